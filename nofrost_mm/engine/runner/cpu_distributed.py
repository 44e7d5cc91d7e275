"""Distributed training of NoFrostRunner on machines without a GPU."""

import copy
import datetime
import os
import re

import torch
import torch.distributed as torch_dist
from mmengine.dist import is_distributed
from mmengine.model import is_model_wrapper

from nofrost_mm.utils.config_checks import check_keys, check_number

# keys of env_cfg.dist_cfg: mmengine's, then those it passes to init_process_group
DIST_CFG_KEYS = (
    'backend',
    'init_backend',
    'timeout',
    'init_method',
    'world_size',
    'rank',
    'store',
    'group_name',
    'pg_options',
    'device_id',
)
# messages of a collective whose peer died or stopped answering
COMM_FAILURE = re.compile(
    r'gloo|nccl|connection (closed|reset|refused)|broken pipe|timed? ?out|'
    r'peer|socket',
    re.IGNORECASE,
)


class CPUDistributedMixin:
    """gloo process groups for :class:`NoFrostRunner` without CUDA.

    mmengine 0.10 assumes a GPU per process (``init_dist`` calls
    ``torch.cuda.set_device``); here gloo is initialised first for
    ``--launcher pytorch``, after ``env_cfg.dist_cfg`` is checked (known
    keys, ``timeout`` > 0 seconds), and the model is wrapped with
    ``device_ids=None``. A collective that fails because another rank died
    or hung past ``timeout`` is reported as such
    (:meth:`collective_failure`). With GPUs: NCCL, unchanged.
    """

    def setup_env(self, env_cfg: dict) -> None:
        dist_cfg = env_cfg.get('dist_cfg', {}) or {}
        check_keys('env_cfg.dist_cfg', dist_cfg, DIST_CFG_KEYS)
        if 'timeout' in dist_cfg:
            check_number(
                'env_cfg.dist_cfg.timeout (seconds)',
                dist_cfg['timeout'],
                min_value=0,
                min_inclusive=False,
            )
        if self.distributed and not is_distributed() and not torch.cuda.is_available():
            self._init_cpu_process_group(dist_cfg)
        super().setup_env(env_cfg)

    def wrap_model(self, model_wrapper_cfg, model):
        if self.distributed and not torch.cuda.is_available() and not is_model_wrapper(model):
            model_wrapper_cfg = copy.deepcopy(model_wrapper_cfg) or dict(
                broadcast_buffers=False,
                find_unused_parameters=self.cfg.get('find_unused_parameters', False),
            )
            # CPU modules take no device ids (DDP rejects [LOCAL_RANK])
            model_wrapper_cfg['device_ids'] = None
            os.environ.setdefault('LOCAL_RANK', '0')
        return super().wrap_model(model_wrapper_cfg, model)

    def collective_failure(self, error: Exception):
        """The error to raise for ``error`` when it is a failed collective.

        Returns:
            RuntimeError | None: Naming the rank, the epoch and iteration,
            ``env_cfg.dist_cfg.timeout`` and the way to resume; None when
            ``error`` is something else (or the run is not distributed).
        """
        if not (self.distributed and COMM_FAILURE.search(str(error))):
            return None
        timeout = self.cfg.get('env_cfg', {}).get('dist_cfg', {}).get('timeout', 1800)
        first_line = str(error).strip().splitlines()[0][:300]
        return RuntimeError(
            f'rank {self.rank}/{self.world_size}: a collective operation '
            f'failed in epoch {self.epoch + 1}, iteration {self.iter + 1}: '
            'another '
            'rank died or did not answer within env_cfg.dist_cfg.timeout='
            f'{timeout} s. Check the logs of the other ranks; resume with '
            f'--resume from the last checkpoint in {self.work_dir}. '
            f'({type(error).__name__}: {first_line})'
        )

    def _init_cpu_process_group(self, dist_cfg: dict) -> None:
        if self.launcher != 'pytorch':
            raise RuntimeError(
                f'launcher={self.launcher!r} needs GPUs; on a machine without '
                "CUDA use launcher='pytorch' (tools/dist_train.sh) with gloo."
            )
        backend = dist_cfg.get('backend', 'gloo')
        if backend == 'nccl':  # the GPU default of configs: gloo is the CPU one
            backend = 'gloo'
        if backend != 'gloo':
            raise ValueError(
                f'env_cfg.dist_cfg.backend={backend!r} cannot run '
                "without CUDA; allowed on CPU: 'gloo'"
            )
        timeout = datetime.timedelta(seconds=dist_cfg.get('timeout', 1800))
        torch_dist.init_process_group(backend='gloo', timeout=timeout)
