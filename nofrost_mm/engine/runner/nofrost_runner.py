"""An mmengine Runner that also distributes on machines without a GPU."""
import copy
import datetime
import os

import torch
import torch.distributed as torch_dist
from mmengine.dist import is_distributed
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
# in mmengine's root registry: runner_type is resolved before any default scope is set
from mmengine.registry import RUNNERS


@RUNNERS.register_module()
class NoFrostRunner(Runner):
    """``mmengine.runner.Runner`` that runs ``--launcher pytorch`` on CPU too.

    mmengine 0.10 assumes a GPU per process when distributed: ``init_dist``
    calls ``torch.cuda.set_device`` and ``wrap_model`` gives the DDP wrapper
    ``device_ids=[LOCAL_RANK]``, which CPU modules reject. On a machine without
    CUDA this runner initialises the process group with gloo itself (so
    mmengine skips its own ``init_dist``) and wraps the model with
    ``device_ids=None``. With GPUs it behaves exactly like ``Runner`` (NCCL).

    Select it with ``runner_type = 'NoFrostRunner'`` in a config (the
    plug-in's ``default_runtime.py`` does); it takes the same arguments as
    ``Runner``. The distributed timeout is ``env_cfg.dist_cfg.timeout`` in
    seconds.
    """

    def setup_env(self, env_cfg: dict) -> None:
        if self.distributed and not is_distributed() \
                and not torch.cuda.is_available():
            self._init_cpu_process_group(env_cfg.get('dist_cfg', {}))
        super().setup_env(env_cfg)

    def _init_cpu_process_group(self, dist_cfg: dict) -> None:
        if self.launcher != 'pytorch':
            raise RuntimeError(
                f'launcher={self.launcher!r} needs GPUs; on a machine without '
                "CUDA use launcher='pytorch' (tools/dist_train.sh) with gloo.")
        backend = dist_cfg.get('backend', 'gloo')
        if backend == 'nccl':  # the GPU default of configs: gloo is the CPU one
            backend = 'gloo'
        if backend != 'gloo':
            raise ValueError(f'env_cfg.dist_cfg.backend={backend!r} cannot run '
                             "without CUDA; allowed on CPU: 'gloo'")
        timeout = datetime.timedelta(seconds=dist_cfg.get('timeout', 1800))
        torch_dist.init_process_group(backend='gloo', timeout=timeout)

    def wrap_model(self, model_wrapper_cfg, model):
        if self.distributed and not torch.cuda.is_available() \
                and not is_model_wrapper(model):
            model_wrapper_cfg = copy.deepcopy(model_wrapper_cfg) or dict(
                broadcast_buffers=False,
                find_unused_parameters=self.cfg.get(
                    'find_unused_parameters', False))
            # CPU modules take no device ids (DDP rejects [LOCAL_RANK])
            model_wrapper_cfg['device_ids'] = None
            os.environ.setdefault('LOCAL_RANK', '0')
        return super().wrap_model(model_wrapper_cfg, model)
