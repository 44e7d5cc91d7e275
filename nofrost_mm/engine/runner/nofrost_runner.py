"""An mmengine Runner that distributes without a GPU and resumes exactly.

Its concerns live in one module each: checkpoints and the work dir
(checkpoint_io.py), RNG isolation of validation (rng_isolation.py), gloo
without CUDA (cpu_distributed.py), the line printed on SIGTERM/SIGINT
(stop_signals.py), the config text cache (text_cached_config.py), the dataset
checks (nofrost_mm/datasets/data_checks.py, MNIST's files included); scoring
class-subset test sets is ClassSubsetHook's, in default_runtime.py's
default_hooks. This file holds the order in which they run, the pre-flight
checks, naming and the model's memory format.
"""

import copy
import glob
import inspect
import os.path as osp
from collections import Counter

import torch
from mmengine.config import Config
from mmengine.model import is_model_wrapper

# in mmengine's root registry: runner_type is resolved before any default scope is set
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from nofrost_mm.datasets.data_checks import check_dataloaders
from nofrost_mm.evaluation.robust_test_config import ROBUST_LOOPS, robust_test_cfg
from nofrost_mm.utils.config_checks import (
    check_bool,
    check_plugin_component_keys,
    check_schedule_length,
)
from .checkpoint_io import CheckpointMixin, RunInputs
from .cpu_distributed import CPUDistributedMixin
from .rng_isolation import RNGIsolationMixin
from .stop_signals import resume_command, stop_signals
from .text_cached_config import TextCachedConfig

__all__ = ['NoFrostRunner']


def _plugin_registries():
    from mmpretrain import registry as mmpretrain_registry

    from nofrost_mm.registry import ATTACKS

    return [
        getattr(mmpretrain_registry, name)
        for name in (
            'MODELS',
            'DATASETS',
            'TRANSFORMS',
            'HOOKS',
            'METRICS',
            'OPTIM_WRAPPERS',
            'LOOPS',
            'DATA_SAMPLERS',
        )
    ] + [ATTACKS]


@RUNNERS.register_module()
class NoFrostRunner(CheckpointMixin, RNGIsolationMixin, CPUDistributedMixin, Runner):
    """``mmengine.runner.Runner`` that runs on CPU clusters and resumes exactly.

    On top of ``Runner`` (same arguments; selected with
    ``runner_type = 'NoFrostRunner'``, as the plug-in's ``default_runtime.py``
    does):

    - ``--launcher pytorch`` without CUDA: gloo, and the model wrapped with
      ``device_ids=None`` (:class:`CPUDistributedMixin`). A collective that
      fails because another rank died or hung past ``timeout`` ends training
      with an error saying so.
    - Before any data is read (:mod:`nofrost_mm.datasets.data_checks`), misspelt arguments of the plug-in's
      components are reported with the closest valid name (moved keys with
      their new one), the plug-in's datasets are built lazily (so their
      argument checks run, val and test ones included). When training or a
      test starts, missing data folders or MNIST files of the loaders it
      reads are named with their config key (before any data is read or a
      download tried). Test sets of a class subset (ImageNet-R/-A) are
      scored on their classes' logits by ``ClassSubsetHook``, which the
      plug-in's ``default_runtime.py`` puts in ``default_hooks`` (a leaf's
      ``custom_hooks`` do not drop it).
    - Atomic checkpoints with every rank's RNG states, an auto-resume that
      skips incomplete files, integrity-checked loading, a work dir that
      keeps the run it holds (:class:`CheckpointMixin`);
      validation on a saved RNG state (:class:`RNGIsolationMixin`). With
      mmengine's restored sampler seed/epoch, optimizer and schedulers, a
      resumed epoch-based run is bit-exact (``docs/reliability.md``).
    - ``channels_last = True`` (a top-level config key, default False) puts
      the model's 4-d weights in channels-last memory format right after it
      is built, before DDP wraps it and before any checkpoint is loaded (a
      state dict copied in keeps the model's layout). Batches, attacks and
      test images follow the weights
      (:func:`nofrost_mm.utils.model_memory_format`).
    - A top-level ``test_attacks`` list is the config's test loop
      (:meth:`from_cfg`), for mmpretrain's own ``tools/test.py`` as for this
      repository's.
    - SIGTERM or SIGINT during training or a test logs one line before the
      process ends as the signal would: what was saved (the last checkpoint,
      the robust evaluation's finished batches) and the command that
      continues it with ``--resume`` (:mod:`.stop_signals`).
    - The config's text is formatted once per content
      (:class:`TextCachedConfig`), not again for every checkpoint.
    - Every runner of a process gets its own logger, message hub, visualizer
      and scope: mmengine names them ``{config}_{timestamp}`` (to the second)
      and reuses an instance of that name, so two runners of one config
      built within a second would share CheckpointHook's list of
      checkpoints to delete. The n-th runner of a config in a process
      (n >= 2) without an ``experiment_name`` is named
      ``{config}-{n}_{timestamp}``.
    """

    # runners built so far in this process, per config file name
    _runners_per_config: Counter = Counter()

    def __init__(self, *args, **kwargs):
        given = _given_arguments(args, kwargs)
        self.run_inputs = RunInputs(
            given.get('load_from'), bool(given.get('resume', False)), given.get('train_cfg')
        )
        self._name_distinct_from_earlier_runners(kwargs)
        # before anything is built or read: misspelt arguments of the
        # plug-in's components, reported with the closest valid name
        check_plugin_component_keys(
            {k: v for k, v in kwargs.items() if k != 'cfg'}, _plugin_registries()
        )
        check_bool('channels_last', (kwargs.get('cfg') or {}).get('channels_last', False))
        if isinstance(kwargs.get('cfg'), Config):
            # formatted once, not again for every checkpoint's meta
            kwargs['cfg'] = TextCachedConfig.of(kwargs['cfg'])
        super().__init__(*args, **kwargs)
        self._register_rng_isolation_hooks()
        # the plug-in's datasets are built lazily: their argument checks run
        # now, not when their loop starts (val after the training data)
        check_dataloaders(
            self._unbuilt_dataloaders('train_dataloader', 'val_dataloader', 'test_dataloader')
        )

    @classmethod
    def from_cfg(cls, cfg) -> 'NoFrostRunner':
        """Build the runner from a config; ``test_attacks`` become its test loop.

        A config's ``test_attacks`` is the RobustTestLoop that
        :func:`robust_test_cfg` makes of it, whichever tool builds the runner
        (mmpretrain's own ``tools/test.py`` too), not a key left unread; the
        attacks of a config's own robust loop follow the same rules (the
        training eps, the report entries' form).
        """
        if (
            cfg.get('test_attacks') is not None
            or (cfg.get('test_cfg') or {}).get('type') in ROBUST_LOOPS
        ):
            cfg = copy.deepcopy(cfg)
            robust_test_cfg(cfg)
        return super().from_cfg(cfg)

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

    def _unbuilt_dataloaders(self, *names: str) -> dict:
        """``{name: dataloader config}`` of the loaders not built yet.

        mmengine's public ``train_dataloader`` (etc.) builds the loader and
        reads its data; until a loop builds it the config is only held in
        the Runner's ``_train_dataloader`` (etc.), read here and nowhere
        else.
        """
        return {name: getattr(self, f'_{name}') for name in names}

    def _check_data_files(self, *names: str) -> None:
        """The data of the loaders a run reads is where the config says
        (before the training data is loaded or a download tried; a test
        needs no training data)."""
        check_dataloaders(self._unbuilt_dataloaders(*names), files=True)

    def wrap_model(self, model_wrapper_cfg, model):
        if self.cfg.get('channels_last', False) and not is_model_wrapper(model):
            # before DDP (its buckets follow the parameters' layout) and
            # before load_or_resume (copy_ keeps the layout)
            model = model.to(memory_format=torch.channels_last)
        return super().wrap_model(model_wrapper_cfg, model)

    def _check_adversarial_training_setup(self) -> None:
        """Adversarial training needs the hook that schedules and validates it.

        Checked before the training data is built, not at the first batch.
        """
        from nofrost_mm.engine.hooks import AdversarialTrainingHook
        from nofrost_mm.models.data_preprocessors import PGDDataPreprocessor

        model = self.model.module if is_model_wrapper(self.model) else self.model
        preprocessor = getattr(model, 'data_preprocessor', None)
        weight = getattr(model, 'adv_loss_weight', None)
        if (
            isinstance(preprocessor, PGDDataPreprocessor)
            and weight != 0
            and not any(isinstance(h, AdversarialTrainingHook) for h in self.hooks)
        ):
            raise ValueError(
                'data_preprocessor=PGDDataPreprocessor attacks in training '
                f'(model.adv_loss_weight={weight}) but no '
                'AdversarialTrainingHook is set: add custom_hooks = '
                "[dict(type='AdversarialTrainingHook')] to the config, or set "
                'model.adv_loss_weight=0 for standard training'
            )

    def train(self):
        complete = self._before_training()
        if complete is not None:
            self.logger.warning(complete)
            return self.model
        # a val loop exists exactly when a val_dataloader is given (mmengine
        # refuses one without the other)
        self._check_data_files('train_dataloader', 'val_dataloader')
        self._check_adversarial_training_setup()
        # a run shortened below its lr schedule says so before it starts
        check_schedule_length(self.param_schedulers, self.run_inputs.train_cfg)
        try:
            with stop_signals(self._training_stopped, self._log_on_main):
                return super().train()
        except Exception as error:
            failure = self.collective_failure(error)
            if failure is None:
                raise
            raise failure from error

    def val(self) -> dict:
        self._check_data_files('val_dataloader')
        return super().val()

    def test(self) -> dict:
        self._check_data_files('test_dataloader')
        with stop_signals(self._test_stopped, self._log_on_main):
            return super().test()

    def _log_on_main(self, message: str) -> None:
        if self.rank == 0:
            self.logger.warning(message)

    def _training_stopped(self, signal_name: str) -> str:
        """What a stopped training saved, and the command that continues it."""
        pointer = osp.join(self.work_dir, 'last_checkpoint')
        last = None
        if osp.isfile(pointer):
            with open(pointer) as f:
                last = f.read().strip() or None
        saved = (
            f'the last checkpoint is {last}'
            if last
            else f'no checkpoint was saved yet in {self.work_dir}'
        )
        return (
            f'{signal_name}: training stopped in epoch {self.epoch + 1} '
            f'(iteration {self.iter + 1}); {saved}. Continue with '
            f'{resume_command()} (work dir {self.work_dir}).'
        )

    def _test_stopped(self, signal_name: str) -> str:
        """What a stopped evaluation saved, and the command that continues it."""
        # not the public test_loop: it would build the loop (in a signal
        # handler) when the signal came before test() had built it
        loop = self._test_loop
        state = getattr(loop, 'state', None)
        if state is None:
            return (
                f'{signal_name}: evaluation stopped; it keeps no partial '
                'results (a robust evaluation of tools/test.py does, '
                'test_cfg.state_dir): run it again.'
            )
        saved = len(glob.glob(osp.join(state.directory, 'chunk_*.pth')))
        total = len(loop.dataloader) * self.world_size
        return (
            f'{signal_name}: robust evaluation stopped; the results of '
            f'{saved} of {total} batches are saved in {state.directory}. '
            f'Resume with {resume_command()} (work dir {self.work_dir}): '
            'only the other batches are attacked.'
        )


def _given_arguments(args: tuple, kwargs: dict) -> dict:
    """The Runner's arguments by name, however they were passed."""
    try:
        return inspect.signature(Runner.__init__).bind(None, *args, **kwargs).arguments
    except TypeError:  # the Runner raises its own error for these
        return kwargs
