"""An mmengine Runner that distributes without a GPU and resumes exactly."""
import copy
import datetime
import glob
import inspect
import os
import os.path as osp
import pickle
import re
import zipfile
from collections import Counter
from typing import Optional

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.dist import all_gather_object, is_distributed, is_main_process
from mmengine.model import is_model_wrapper
# in mmengine's root registry: runner_type is resolved before any default scope is set
from mmengine.registry import RUNNERS
from mmengine.runner import EpochBasedTrainLoop, Runner
from mmengine.runner.checkpoint import (_load_checkpoint,
                                        _load_checkpoint_to_model)

from nofrost_mm.engine.runner.robust_test_config import robust_test_cfg
from nofrost_mm.engine.runner.text_cached_config import TextCachedConfig
from nofrost_mm.utils.config_checks import (check_bool, check_keys, check_number,
                                            check_plugin_component_keys)
from nofrost_mm.utils.rng_state import get_rng_state, set_rng_state

# keys of env_cfg.dist_cfg: mmengine's, then those it passes to init_process_group
DIST_CFG_KEYS = ('backend', 'init_backend', 'timeout', 'init_method',
                 'world_size', 'rank', 'store', 'group_name', 'pg_options',
                 'device_id')
# messages of a collective whose peer died or stopped answering
_COMM_FAILURE = re.compile(
    r'gloo|nccl|connection (closed|reset|refused)|broken pipe|timed? ?out|'
    r'peer|socket', re.IGNORECASE)


class CheckpointLoadError(RuntimeError):
    """A checkpoint that cannot be read, resumed or loaded into the model."""


def _is_complete_checkpoint(path: str) -> bool:
    """Whether ``path`` is a whole torch zip file (CRCs checked, no unpickling)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False


def _plugin_registries():
    from mmpretrain import registry as mmpretrain_registry

    from nofrost_mm.registry import ATTACKS
    return [getattr(mmpretrain_registry, name) for name in (
        'MODELS', 'DATASETS', 'TRANSFORMS', 'HOOKS', 'METRICS',
        'OPTIM_WRAPPERS', 'LOOPS', 'DATA_SAMPLERS')] + [ATTACKS]


@RUNNERS.register_module()
class NoFrostRunner(Runner):
    """``mmengine.runner.Runner`` that runs on CPU clusters and resumes exactly.

    On top of ``Runner`` (same arguments; selected with
    ``runner_type = 'NoFrostRunner'``, as the plug-in's ``default_runtime.py``
    does):

    - ``--launcher pytorch`` without CUDA: mmengine 0.10 assumes a GPU per
      process (``init_dist`` calls ``torch.cuda.set_device``, ``wrap_model``
      passes ``device_ids=[LOCAL_RANK]``). Here gloo is initialised first and
      the model wrapped with ``device_ids=None``. With GPUs: NCCL, unchanged.
    - Before any data is read, misspelt arguments of the plug-in's
      components are reported with the closest valid name, the plug-in's
      datasets are built lazily (so their argument checks run, val and test
      ones included), and ``env_cfg.dist_cfg`` is checked (known keys,
      ``timeout`` > 0 seconds). A collective that fails because another
      rank died or hung past ``timeout`` ends training with an error saying so.
    - Checkpoints are written atomically (temporary file in the same folder,
      fsync, ``os.replace``): a kill while saving never leaves a truncated
      file under a checkpoint name. Auto-resume skips a ``last_checkpoint``
      that is empty or names an incomplete file, falling back to the newest
      complete checkpoint in the work dir.
    - Every checkpoint carries the python/numpy/torch RNG states of every rank
      (``meta['rng_states']``), restored on resume; validation runs on a
      saved-and-restored RNG state, so it never shifts the training stream.
      Together with mmengine's restored sampler seed/epoch, optimizer and
      schedulers, a resumed epoch-based run is bit-exact (``docs/reliability.md``).
    - Loading a truncated or corrupted file, a bare state dict where a
      resumable checkpoint is needed, or weights of another architecture
      raises :class:`CheckpointLoadError` naming the file and the problem.
      ``torch.load`` stays weights-only.
    - ``channels_last = True`` (a top-level config key, default False) puts
      the model's 4-d weights in channels-last memory format right after it
      is built, before DDP wraps it and before any checkpoint is loaded (a
      state dict copied in keeps the model's layout, so resuming stays
      channels-last and its checkpoints load into any model);
      :class:`PGDDataPreprocessor` follows with channels-last inputs and
      attack images. Faster convolutions on recent CPUs and on tensor cores.
    - A top-level ``test_attacks`` list is the config's test loop:
      ``test_cfg=dict(type='RobustTestLoop', attacks=...)`` with the
      RobustAccuracy evaluator (:meth:`from_cfg`), for mmpretrain's own
      ``tools/test.py`` as for this repository's.
    - The config's text (``meta['cfg']`` of every checkpoint, the log, the
      dumped config) is formatted once per content
      (:class:`TextCachedConfig`), not again for every checkpoint.
    - Every runner of a process gets its own logger, message hub, visualizer
      and scope: mmengine names them ``{config}_{timestamp}`` (to the second)
      and returns an existing instance of that name, so a second runner of
      the same config built within the same second shared the first one's
      message hub, and with it CheckpointHook's list of checkpoints to
      delete: it deleted its own ``epoch_1.pth`` and ``epoch_2.pth`` (a
      test's rollback checks found them gone). The
      n-th runner of a config in a process (n >= 2) without an
      ``experiment_name`` is named ``{config}-{n}_{timestamp}``.

    ``save_checkpoint`` gathers RNG states from all ranks, so like every
    mmengine call site (``CheckpointHook``) it must be called on every rank.
    """

    _rng_before_val: Optional[dict] = None
    _rng_to_restore: Optional[dict] = None
    # runners built so far in this process, per config file name
    _runners_per_config: Counter = Counter()

    def __init__(self, *args, **kwargs):
        self._name_distinct_from_earlier_runners(kwargs)
        # before anything is built or read: misspelt arguments of the
        # plug-in's components, reported with the closest valid name
        check_plugin_component_keys(
            {k: v for k, v in kwargs.items() if k != 'cfg'},
            _plugin_registries())
        check_bool('channels_last', (kwargs.get('cfg') or {}).get(
            'channels_last', False))
        if isinstance(kwargs.get('cfg'), Config):
            # formatted once, not again for every checkpoint's meta
            kwargs['cfg'] = TextCachedConfig.of(kwargs['cfg'])
        super().__init__(*args, **kwargs)
        self._check_plugin_datasets()
        self._ensure_class_subset_hook()

    @classmethod
    def from_cfg(cls, cfg) -> 'NoFrostRunner':
        """Build the runner from a config; ``test_attacks`` become its test loop.

        A config's ``test_attacks`` is the RobustTestLoop that
        :func:`robust_test_cfg` makes of it, whichever tool builds the runner
        (mmpretrain's own ``tools/test.py`` too), not a key left unread.
        """
        if cfg.get('test_attacks') is not None:
            cfg = copy.deepcopy(cfg)
            robust_test_cfg(cfg)
        return super().from_cfg(cfg)

    def _ensure_class_subset_hook(self) -> None:
        """Register ClassSubsetHook unless the config has one.

        A leaf config that sets its own ``custom_hooks`` drops the one of
        the ImageNet-R/-A dataset bases; the 200-class sets would then be
        scored on all 1000 logits without a word. The hook does nothing for
        datasets without ``class_subset``.
        """
        from nofrost_mm.engine.hooks import ClassSubsetHook
        if not any(isinstance(h, ClassSubsetHook) for h in self.hooks):
            self.register_hook(ClassSubsetHook())

    @classmethod
    def _name_distinct_from_earlier_runners(cls, kwargs: dict) -> None:
        if kwargs.get('experiment_name') is not None:
            return  # the user's own name is kept as given
        cfg = kwargs.get('cfg')
        filename = getattr(cfg, 'filename', None)
        stem = osp.splitext(osp.basename(filename))[0] if filename else 'run'
        cls._runners_per_config[stem] += 1
        count = cls._runners_per_config[stem]
        if count > 1:
            # mmengine appends the timestamp
            kwargs['experiment_name'] = f'{stem}-{count}'

    def _check_plugin_datasets(self) -> None:
        """Build the plug-in's datasets lazily: their checks, no data read.

        The Runner builds dataloaders only when a loop starts, the val one
        after the train data is loaded; a bad ``val_dataloader.dataset`` key
        would only show then. mmpretrain's ``MNIST`` without download must
        find its four files (an error naming the offline converter otherwise).
        """
        from mmpretrain.datasets import MNIST
        from mmpretrain.registry import DATASETS

        from nofrost_mm.datasets.mnist_files import check_mnist_files
        for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            loader = getattr(self, f'_{name}')
            dataset = loader.get('dataset') if isinstance(loader, dict) \
                else None
            if not isinstance(dataset, dict) or \
                    not isinstance(dataset.get('type'), str):
                continue
            cls = DATASETS.get(dataset['type'])
            if inspect.isclass(cls) and cls.__module__.startswith('nofrost_mm'):
                DATASETS.build(dict(copy.deepcopy(dataset), lazy_init=True))
            elif cls is MNIST and not dataset.get('download', True):
                # mmpretrain's own error comes only when the data is loaded
                # and suggests download=True (its server is gone)
                lazy = DATASETS.build(dict(copy.deepcopy(dataset), lazy_init=True))
                check_mnist_files(lazy.data_prefix['root'], f'{name}.dataset')

    # ---------------------------------------------------------------- dist
    def setup_env(self, env_cfg: dict) -> None:
        dist_cfg = env_cfg.get('dist_cfg', {}) or {}
        check_keys('env_cfg.dist_cfg', dist_cfg, DIST_CFG_KEYS)
        if 'timeout' in dist_cfg:
            check_number('env_cfg.dist_cfg.timeout (seconds)',
                         dist_cfg['timeout'], min_value=0, min_inclusive=False)
        if self.distributed and not is_distributed() \
                and not torch.cuda.is_available():
            self._init_cpu_process_group(dist_cfg)
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
        if self.cfg.get('channels_last', False) and not is_model_wrapper(model):
            # before DDP (its buckets follow the parameters' layout) and
            # before load_or_resume (copy_ keeps the layout)
            model = model.to(memory_format=torch.channels_last)
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

    def _check_adversarial_training_setup(self) -> None:
        """An attacking preprocessor needs the hook that hands it the model.

        Checked before the training data is built, not at the first batch.
        """
        from nofrost_mm.engine.hooks import AdversarialTrainingHook
        from nofrost_mm.models.data_preprocessors import PGDDataPreprocessor
        model = self.model.module if is_model_wrapper(self.model) else self.model
        preprocessor = getattr(model, 'data_preprocessor', None)
        if isinstance(preprocessor, PGDDataPreprocessor) \
                and preprocessor.adv_loss_weight > 0 \
                and not any(isinstance(h, AdversarialTrainingHook)
                            for h in self.hooks):
            raise ValueError(
                'data_preprocessor=PGDDataPreprocessor attacks in training '
                f'(adv_loss_weight={preprocessor.adv_loss_weight}) but no '
                'AdversarialTrainingHook is set: add custom_hooks = '
                "[dict(type='AdversarialTrainingHook')] to the config, or set "
                'data_preprocessor.adv_loss_weight=0 for standard training')

    def train(self):
        self._check_adversarial_training_setup()
        try:
            return super().train()
        except Exception as error:
            if not (self.distributed and _COMM_FAILURE.search(str(error))):
                raise
            timeout = self.cfg.get('env_cfg', {}).get('dist_cfg', {}).get(
                'timeout', 1800)
            first_line = str(error).strip().splitlines()[0][:300]
            raise RuntimeError(
                f'rank {self.rank}/{self.world_size}: a collective operation '
                f'failed in epoch {self.epoch + 1}, iteration {self.iter + 1}: '
                'another '
                'rank died or did not answer within env_cfg.dist_cfg.timeout='
                f'{timeout} s. Check the logs of the other ranks; resume with '
                f'--resume from the last checkpoint in {self.work_dir}. '
                f'({type(error).__name__}: {first_line})') from error

    # ------------------------------------------------------- RNG isolation
    def build_val_loop(self, loop):
        loop = super().build_val_loop(loop)
        if not getattr(loop, '_nofrost_own_rng', False):
            run = loop.run

            def run_on_saved_rng():
                # the val dataloader and model draw from the global RNGs:
                # without this, an uninterrupted run and a resumed one (which
                # skips the validation of the epoch it resumes from) diverge
                self._rng_before_val = get_rng_state()
                try:
                    return run()
                finally:
                    set_rng_state(self._rng_before_val)
                    self._rng_before_val = None

            loop.run = run_on_saved_rng
            loop._nofrost_own_rng = True
        return loop

    # -------------------------------------------------------------- saving
    def save_checkpoint(self, out_dir: str, filename: str,
                        file_client_args: Optional[dict] = None,
                        save_optimizer: bool = True,
                        save_param_scheduler: bool = True,
                        meta: Optional[dict] = None, by_epoch: bool = True,
                        backend_args: Optional[dict] = None):
        """Save a checkpoint atomically, with every rank's RNG states.

        Same arguments as :meth:`mmengine.runner.Runner.save_checkpoint`;
        must be called on every rank (RNG states are gathered).
        """
        if meta is not None and not isinstance(meta, dict):
            raise TypeError(f'meta should be a dict or None, got {type(meta)}')
        meta = dict(meta or {})
        # during validation (best checkpoints) the state the training resumes
        # with is the one from before validation
        rng = self._rng_before_val or get_rng_state()
        meta['rng_states'] = all_gather_object(rng) if self.distributed \
            else [rng]
        kwargs = dict(save_optimizer=save_optimizer,
                      save_param_scheduler=save_param_scheduler, meta=meta,
                      by_epoch=by_epoch)
        local = file_client_args is None and backend_args is None \
            and '://' not in str(out_dir)
        if not local:  # remote backends: mmengine's put, as is
            return super().save_checkpoint(
                out_dir, filename, file_client_args,
                backend_args=backend_args, **kwargs)
        if not is_main_process():
            return None
        final = osp.join(out_dir, filename)
        partial = osp.join(out_dir, f'.{filename}.partial')
        try:
            super().save_checkpoint(out_dir, osp.basename(partial), **kwargs)
            with open(partial, 'rb') as f:
                os.fsync(f.fileno())
            os.replace(partial, final)
        except BaseException:
            # a failed write leaves the previous checkpoint under the name
            # (after a SIGKILL the partial file stays, overwritten next time)
            if osp.exists(partial):
                os.remove(partial)
            raise
        try:  # make the rename itself durable
            dir_fd = os.open(out_dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError:  # some filesystems cannot fsync a directory
            pass
        return None

    # ------------------------------------------------------------- loading
    def load_or_resume(self) -> None:
        if self._has_loaded:
            return None
        if self._resume and self._load_from is None:
            resume_from = self._latest_complete_checkpoint()
            if resume_from is None:
                self.logger.info(
                    f'No complete checkpoint in {self.work_dir} to resume '
                    'from: training starts from scratch.')
                return None
            self.logger.info(f'Auto resumed from the latest checkpoint '
                             f'{resume_from}.')
            self.resume(resume_from)
            self._has_loaded = True
            return None
        return super().load_or_resume()

    def _latest_complete_checkpoint(self) -> Optional[str]:
        """``last_checkpoint`` if complete, else the newest complete one."""
        pointer = osp.join(self.work_dir, 'last_checkpoint')
        named = None
        if osp.isfile(pointer):
            with open(pointer) as f:
                named = f.read().strip() or None
            if named and _is_complete_checkpoint(named):
                return named
            self.logger.warning(
                f'{pointer} names {named!r}, which is missing or incomplete '
                '(killed while saving?): looking for the newest complete '
                'checkpoint instead.')
        candidates = [
            p for p in glob.glob(osp.join(self.work_dir, '*.pth'))
            if re.fullmatch(r'(epoch|iter)_\d+\.pth', osp.basename(p))]
        for path in sorted(candidates, key=osp.getmtime, reverse=True):
            if _is_complete_checkpoint(path):
                if named is not None:
                    self.logger.warning(f'Resuming from {path} instead.')
                return path
            self.logger.warning(f'Skipping incomplete checkpoint {path}.')
        return None

    def resume(self, filename: str, resume_optimizer: bool = True,
               resume_param_scheduler: bool = True,
               map_location='default') -> None:
        self._resuming = True
        try:
            super().resume(filename, resume_optimizer, resume_param_scheduler,
                           map_location)
        finally:
            self._resuming = False
        loop = self._train_loop
        if isinstance(loop, EpochBasedTrainLoop) and loop.max_iters \
                and self.iter % (loop.max_iters // loop.max_epochs):
            self.logger.warning(
                f'{filename} was saved mid-epoch (iteration {self.iter}): '
                'mmengine restarts an epoch-based loop at the first batch of '
                f'epoch {self.epoch + 1}, so this resume is not exact. Resume '
                'from an epoch checkpoint for a bit-exact continuation.')
        if self._rng_to_restore is not None:
            # last step of resuming: nothing may draw from the RNGs after it
            set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None
            self.logger.info('Restored the RNG states saved in the checkpoint.')

    def load_checkpoint(self, filename: str, map_location='cpu',
                        strict: bool = False,
                        revise_keys: list = [(r'^module.', '')]):
        """Load a checkpoint into the model, with errors naming the problem.

        Same arguments as :meth:`mmengine.runner.Runner.load_checkpoint`.
        Raises :class:`CheckpointLoadError` if the file is missing, truncated
        or corrupted, holds objects outside the weights-only allow-list, is
        resumed but is no mmengine checkpoint, or does not fit the model.
        """
        resuming = getattr(self, '_resuming', False)
        checkpoint = self._read_checkpoint(filename, map_location)
        model = self.model.module if is_model_wrapper(self.model) \
            else self.model
        self._check_fits_model(filename, checkpoint, model, resuming,
                               revise_keys)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        checkpoint = _load_checkpoint_to_model(model, checkpoint, strict,
                                               revise_keys=revise_keys)
        if resuming:
            states = checkpoint['meta'].get('rng_states')
            if states is None:
                self.logger.warning(
                    f'{filename} holds no RNG states (not saved by '
                    'NoFrostRunner): the resumed run is not bit-exact.')
            elif len(states) != self.world_size:
                self.logger.warning(
                    f'{filename} holds RNG states of {len(states)} ranks, '
                    f'this run has {self.world_size}: RNG states not restored.')
            else:
                self._rng_to_restore = states[self.rank]
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    @staticmethod
    def _read_checkpoint(filename: str, map_location):
        if '://' not in str(filename) and not osp.isfile(filename):
            raise CheckpointLoadError(f'checkpoint {filename}: no such file')
        try:
            checkpoint = _load_checkpoint(filename, map_location=map_location)
        except pickle.UnpicklingError as error:
            if 'weights only' in str(error).lower():
                raise CheckpointLoadError(
                    f'checkpoint {filename} holds Python objects outside the '
                    'weights-only allow-list (nofrost_mm keeps weights-only '
                    'loading on; only mmengine checkpoints and plain state '
                    f'dicts load): {str(error).splitlines()[0]}') from error
            raise CheckpointLoadError(
                f'checkpoint {filename} is corrupted (not a torch checkpoint)'
                f': {error}') from error
        except (RuntimeError, EOFError, OSError, ValueError) as error:
            raise CheckpointLoadError(
                f'checkpoint {filename} is truncated or corrupted (was its '
                'writer killed, or the copy incomplete?): '
                f'{type(error).__name__}: {str(error).splitlines()[0]}'
            ) from error
        if not isinstance(checkpoint, dict):
            raise CheckpointLoadError(
                f'checkpoint {filename} holds a {type(checkpoint).__name__}, '
                'not a dict (an mmengine checkpoint or a state dict)')
        return checkpoint

    @staticmethod
    def _check_fits_model(filename, checkpoint, model, resuming, revise_keys):
        is_mmengine = 'state_dict' in checkpoint and 'meta' in checkpoint
        state_dict = checkpoint.get('state_dict', checkpoint)
        for pattern, repl in revise_keys:
            state_dict = {re.sub(pattern, repl, k): v
                          for k, v in state_dict.items()}
        timm_like = any(k.startswith(('stem.', 'stages.'))
                        for k in state_dict)
        hint = (' Its keys (stem.*, stages.*) are those of a timm '
                'model state dict: mmpretrain models name them backbone.*, '
                'neck.*, head.*; convert a timm NF-ResNet with tools/'
                'model_converters/timm_nfresnet_to_mmpretrain.py and load it '
                'into an NF-ResNet config.') if timm_like else ''
        if resuming and not is_mmengine:
            raise CheckpointLoadError(
                f'checkpoint {filename} cannot be resumed: it is a bare state '
                'dict (no meta, optimizer or scheduler states), not a '
                'checkpoint written by tools/train.py.' + hint +
                ' Use load_from to start from its weights.')
        expected = model.state_dict()
        missing = [k for k in expected if k not in state_dict]
        unexpected = [k for k in state_dict if k not in expected]
        mismatched = [
            f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model '
            f'{tuple(v.shape)}' for k, v in expected.items()
            if k in state_dict and hasattr(state_dict[k], 'shape')
            and tuple(state_dict[k].shape) != tuple(v.shape)]
        fitting = len(expected) - len(missing) - len(mismatched)
        # resuming needs every tensor; fine-tuning may swap a head, but a file
        # that fits less than half of the model is another architecture
        if (resuming and (missing or unexpected or mismatched)) or \
                fitting < len(expected) / 2:
            details = [f'{len(missing)} of {len(expected)} model tensors '
                       'missing' + (f' (e.g. {missing[0]})' if missing else ''),
                       f'{len(mismatched)} of other shape' +
                       (f' (e.g. {mismatched[0]})' if mismatched else ''),
                       f'{len(unexpected)} unexpected' +
                       (f' (e.g. {unexpected[0]})' if unexpected else '')]
            raise CheckpointLoadError(
                f'checkpoint {filename} does not fit the model '
                f'({type(model).__name__}): it was saved from another '
                f'architecture or config: {"; ".join(details)}.' + hint)
