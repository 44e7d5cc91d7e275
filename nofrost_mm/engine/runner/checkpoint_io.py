"""Checkpoints of NoFrostRunner: atomic writes, resume lookup, checked loading.

Reading goes through :mod:`nofrost_mm.utils.checkpoint_reader` (the one
door of the plug-in: integrity check, weights-only, clear errors).
"""

import os
import os.path as osp
import re
from typing import List, NamedTuple, Optional

from mmengine.dist import all_gather_object, broadcast_object_list, is_main_process, master_only
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop
from mmengine.runner.checkpoint import _load_checkpoint_to_model

from nofrost_mm.utils.checkpoint_reader import (
    CHECKPOINT_NAME,
    CheckpointLoadError,
    check_fits_model,
    latest_complete_checkpoint,
    read_checkpoint,
)
from nofrost_mm.utils.rng_state import set_rng_state

__all__ = ['CheckpointMixin', 'RunInputs', 'earlier_run_files', 'refuse_reused_work_dir']

# what a training run leaves in its work dir and a new run would overwrite
_BEST_NAME = re.compile(r'best_.+\.pth')


def earlier_run_files(work_dir: str, checkpoint_out_dir: Optional[str] = None) -> List[str]:
    """The checkpoints (and ``last_checkpoint``) of a run in ``work_dir``.

    Args:
        work_dir (str): The work dir of the new run.
        checkpoint_out_dir (str, optional): ``CheckpointHook``'s ``out_dir``
            (it saves into ``out_dir/basename(work_dir)``). Defaults to None.

    Returns:
        list[str]: Paths, sorted.
    """
    folders = [work_dir]
    if checkpoint_out_dir and '://' not in str(checkpoint_out_dir):
        folders.append(osp.join(checkpoint_out_dir, osp.basename(osp.normpath(work_dir))))
    found = set()
    for folder in folders:
        if not osp.isdir(folder):
            continue
        for name in os.listdir(folder):
            if (
                name == 'last_checkpoint'
                or CHECKPOINT_NAME.fullmatch(name)
                or _BEST_NAME.fullmatch(name)
            ):
                found.add(osp.join(folder, name))
    return sorted(found)


def refuse_reused_work_dir(cfg) -> None:
    """Refuse to train into a work dir that holds another run's checkpoints.

    A new run (not ``resume``) would overwrite ``epoch_N.pth``,
    ``best_*.pth`` and ``last_checkpoint`` of the earlier one. Allowed with
    ``resume`` (the run continues) or ``overwrite_work_dir = True`` (a
    top-level config key: the user accepts the loss).

    Args:
        cfg (Config | dict): With ``work_dir``, ``resume``,
            ``overwrite_work_dir`` and ``default_hooks.checkpoint.out_dir``.

    Raises:
        FileExistsError: Naming the folder, the files and the ways forward.
    """
    if cfg.get('resume', False) or cfg.get('overwrite_work_dir', False):
        return
    work_dir = cfg.get('work_dir')
    if not work_dir:
        return
    checkpoint_hook = (cfg.get('default_hooks') or {}).get('checkpoint') or {}
    files = earlier_run_files(work_dir, checkpoint_hook.get('out_dir'))
    if not files:
        return
    names = [osp.relpath(f, work_dir) for f in files]
    shown = ', '.join(names[:6]) + (f' and {len(names) - 6} more' if len(names) > 6 else '')
    raise FileExistsError(
        f'work_dir {work_dir} already holds the checkpoints of an earlier '
        f'run ({shown}); this run would overwrite them. Continue that run '
        'with --resume (resume=True), or train into another folder with '
        '--work-dir NEW_DIR; to overwrite them, set overwrite_work_dir=True '
        '(--cfg-options overwrite_work_dir=True).'
    )


class RunInputs(NamedTuple):
    """What a run was asked to load, as given to the Runner.

    mmengine keeps these arguments in private attributes; the runner keeps
    its own copy (:meth:`NoFrostRunner.__init__`) instead of reading them.

    Args:
        load_from (str, optional): The checkpoint to load or resume from.
        resume (bool): Resume (the latest complete checkpoint of the work
            dir when ``load_from`` is None).
        train_cfg (dict, optional): The training loop's config
            (``max_epochs`` / ``max_iters``).
    """

    load_from: Optional[str] = None
    resume: bool = False
    train_cfg: Optional[dict] = None


class CheckpointMixin:
    """Checkpoint writing and reading of :class:`NoFrostRunner` (a Runner).

    - Checkpoints are written atomically (temporary file in the same folder,
      fsync, ``os.replace``): a kill while saving never leaves a truncated
      file under a checkpoint name. Auto-resume skips a ``last_checkpoint``
      that is empty or names an incomplete file, falling back to the newest
      complete checkpoint in the work dir.
    - Every checkpoint carries the python/numpy/torch RNG states of every
      rank (``meta['rng_states']``), restored as the last step of resuming.
    - Loading a truncated or corrupted file (every zip member's CRC is
      checked), a bare state dict where a resumable checkpoint is needed,
      or weights of another architecture raises
      :class:`CheckpointLoadError` naming the file and the problem.
      ``torch.load`` stays weights-only.
    - A work dir keeps the run it holds: training (not resuming) into a
      folder with another run's checkpoints is refused
      (:func:`refuse_reused_work_dir`), resuming a finished run does
      nothing and says so, and the config copy ``work_dir/{config}.py`` of
      the first run is kept (each run's own copy is in its log folder). Rank
      0 decides, for every rank.

    ``save_checkpoint`` gathers RNG states from all ranks, so like every
    mmengine call site (``CheckpointHook``) it must be called on every rank;
    the states it saves are ``training_rng_state()``
    (:class:`RNGIsolationMixin`).
    """

    # set by NoFrostRunner.__init__
    run_inputs: RunInputs = RunInputs()
    # set when a checkpoint has been loaded into the model (load_or_resume
    # then does nothing)
    checkpoint_loaded = False
    # while resume() runs: load_checkpoint then needs a whole mmengine
    # checkpoint and takes its RNG states
    _resuming = False
    _rng_to_restore: Optional[dict] = None
    # the checkpoint auto-resume continues from, chosen by rank 0 before
    # training (None: no checkpoint, start from scratch)
    _resume_from: Optional[str] = None
    _resume_from_chosen = False

    @master_only
    def dump_config(self) -> None:
        """Copy the config into this run's log folder, and into the work dir
        unless an earlier run's copy is there (it describes its checkpoints)."""
        name = osp.basename(self.cfg.filename) if self.cfg.filename else f'{self.timestamp}.py'
        self.cfg.dump(osp.join(self.log_dir, name))
        if not osp.exists(osp.join(self.work_dir, name)):
            self.cfg.dump(osp.join(self.work_dir, name))

    def _before_training(self) -> Optional[str]:
        """Refuse a reused work dir; say when a resumed run is already done.

        Rank 0 looks at the files and every rank follows its decision (the
        ranks of a multi-node run may not share the work dir), errors
        included: a rank left waiting would hang until the timeout.

        Returns:
            str | None: The "already complete" message (nothing to train),
            or None.
        """
        decision, error = [None], None
        if is_main_process():
            try:
                decision[0] = ('go', self._decide_training())
            except Exception as caught:
                error = caught
                decision[0] = ('error', (type(caught).__name__, str(caught)))
        if self.distributed:
            broadcast_object_list(decision)
        kind, value = decision[0]
        if kind == 'error':
            if error is not None:
                raise error
            name, message = value
            kinds = {'FileExistsError': FileExistsError, 'CheckpointLoadError': CheckpointLoadError}
            raise kinds.get(name, RuntimeError)(message)
        (self._resume_from, complete), self._resume_from_chosen = value, True
        return complete

    def _decide_training(self) -> tuple:
        """``(checkpoint to resume from, "already complete" message)``."""
        inputs = self.run_inputs
        if not inputs.resume:
            refuse_reused_work_dir(
                dict(
                    work_dir=self.work_dir,
                    resume=False,
                    overwrite_work_dir=self.cfg.get('overwrite_work_dir', False),
                    default_hooks=self.cfg.get('default_hooks'),
                )
            )
            return None, None
        target = (
            inputs.load_from if inputs.load_from is not None else self._latest_complete_checkpoint()
        )
        loop = inputs.train_cfg
        if target is None or loop is None:
            return target, None
        meta = read_checkpoint(target, mmap=True).get('meta') or {}
        max_epochs, max_iters = loop.get('max_epochs'), loop.get('max_iters')
        if max_epochs is not None:
            unit, done, total, key = 'epoch', meta.get('epoch', 0), max_epochs, 'max_epochs'
        elif max_iters is not None:
            unit, done, total, key = 'iteration', meta.get('iter', 0), max_iters, 'max_iters'
        else:  # a loop of its own kind: mmengine decides
            return target, None
        if not isinstance(done, int) or done < total:
            return target, None
        return target, (
            f'{target}: this run is already complete ({unit} {done} of '
            f'{total}): nothing to do; raise train_cfg.{key} to train further '
            '(the parameter schedulers keep the end stored in the checkpoint, '
            'docs/reliability.md)'
        )

    def save_checkpoint(
        self,
        out_dir: str,
        filename: str,
        file_client_args: Optional[dict] = None,
        save_optimizer: bool = True,
        save_param_scheduler: bool = True,
        meta: Optional[dict] = None,
        by_epoch: bool = True,
        backend_args: Optional[dict] = None,
    ):
        """Save a checkpoint atomically, with every rank's RNG states.

        Same arguments as :meth:`mmengine.runner.Runner.save_checkpoint`;
        must be called on every rank (RNG states are gathered).
        """
        if meta is not None and not isinstance(meta, dict):
            raise TypeError(f'meta should be a dict or None, got {type(meta)}')
        meta = dict(meta or {})
        # during validation (best checkpoints) the state the training resumes
        # with is the one from before validation
        rng = self.training_rng_state()
        meta['rng_states'] = all_gather_object(rng) if self.distributed else [rng]
        kwargs = dict(
            save_optimizer=save_optimizer,
            save_param_scheduler=save_param_scheduler,
            meta=meta,
            by_epoch=by_epoch,
        )
        local = file_client_args is None and backend_args is None and '://' not in str(out_dir)
        if not local:  # remote backends: mmengine's put, as is
            return super().save_checkpoint(
                out_dir, filename, file_client_args, backend_args=backend_args, **kwargs
            )
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

    def load_or_resume(self) -> None:
        if self.checkpoint_loaded:
            return None
        if self.run_inputs.resume and self.run_inputs.load_from is None:
            resume_from = (
                self._resume_from
                if self._resume_from_chosen
                else self._latest_complete_checkpoint()
            )
            if resume_from is None:
                self.logger.warning(
                    f'--resume: no complete checkpoint in {self.work_dir} to '
                    'resume from: training starts from scratch (if you meant '
                    "to continue a run, stop and give that run's --work-dir)."
                )
                return None
            self.logger.info(f'Auto resumed from the latest checkpoint {resume_from}.')
            self.resume(resume_from)
            return None
        return super().load_or_resume()

    def _latest_complete_checkpoint(self) -> Optional[str]:
        """``last_checkpoint`` if complete, else the newest complete one."""
        return latest_complete_checkpoint(self.work_dir, self.logger.warning)

    def resume(
        self,
        filename: str,
        resume_optimizer: bool = True,
        resume_param_scheduler: bool = True,
        map_location='default',
    ) -> None:
        self._resuming = True
        try:
            super().resume(filename, resume_optimizer, resume_param_scheduler, map_location)
        finally:
            self._resuming = False
        loop = self.train_loop  # built by mmengine's resume
        if (
            isinstance(loop, EpochBasedTrainLoop)
            and loop.max_iters
            and self.iter % (loop.max_iters // loop.max_epochs)
        ):
            self.logger.warning(
                f'{filename} was saved mid-epoch (iteration {self.iter}): '
                'mmengine restarts an epoch-based loop at the first batch of '
                f'epoch {self.epoch + 1}, so this resume is not exact. Resume '
                'from an epoch checkpoint for a bit-exact continuation.'
            )
        if self._rng_to_restore is not None:
            # last step of resuming, so it stays in the runner: mmengine's
            # resume reseeds (set_randomness with the checkpoint's seed) after
            # load_checkpoint and its after_load_checkpoint hooks, so a hook
            # restoring the states there would see them overwritten; nothing
            # may draw from the RNGs after this
            set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None
            self.logger.info('Restored the RNG states saved in the checkpoint.')

    def load_checkpoint(
        self,
        filename: str,
        map_location='cpu',
        strict: bool = False,
        revise_keys: list = [(r'^module.', '')],
    ):
        """Load a checkpoint into the model, with errors naming the problem.

        Same arguments as :meth:`mmengine.runner.Runner.load_checkpoint`.
        Raises :class:`CheckpointLoadError` if the file is missing, truncated
        or corrupted, holds objects outside the weights-only allow-list, is
        resumed but is no mmengine checkpoint, or does not fit the model.
        """
        resuming = self._resuming
        checkpoint = read_checkpoint(filename, map_location)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        check_fits_model(filename, checkpoint, model, resuming, revise_keys)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        checkpoint = _load_checkpoint_to_model(model, checkpoint, strict, revise_keys=revise_keys)
        if resuming:
            states = checkpoint['meta'].get('rng_states')
            if states is None:
                self.logger.warning(
                    f'{filename} holds no RNG states (not saved by '
                    'NoFrostRunner): the resumed run is not bit-exact.'
                )
            elif len(states) != self.world_size:
                self.logger.warning(
                    f'{filename} holds RNG states of {len(states)} ranks, '
                    f'this run has {self.world_size}: RNG states not restored.'
                )
            else:
                self._rng_to_restore = states[self.rank]
        self.checkpoint_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint
