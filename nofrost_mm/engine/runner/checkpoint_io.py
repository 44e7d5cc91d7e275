"""Checkpoints of NoFrostRunner: atomic writes, resume lookup, checked loading."""
import glob
import os
import os.path as osp
import pickle
import re
import zipfile
from typing import Optional

from mmengine.dist import all_gather_object, is_main_process
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop
from mmengine.runner.checkpoint import (_load_checkpoint,
                                        _load_checkpoint_to_model)

from nofrost_mm.utils.rng_state import get_rng_state, set_rng_state


class CheckpointLoadError(RuntimeError):
    """A checkpoint that cannot be read, resumed or loaded into the model."""


def _is_complete_checkpoint(path: str) -> bool:
    """Whether ``path`` is a whole torch zip file (CRCs checked, no unpickling)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False


class CheckpointMixin:
    """Checkpoint writing and reading of :class:`NoFrostRunner` (a Runner).

    - Checkpoints are written atomically (temporary file in the same folder,
      fsync, ``os.replace``): a kill while saving never leaves a truncated
      file under a checkpoint name. Auto-resume skips a ``last_checkpoint``
      that is empty or names an incomplete file, falling back to the newest
      complete checkpoint in the work dir.
    - Every checkpoint carries the python/numpy/torch RNG states of every
      rank (``meta['rng_states']``), restored as the last step of resuming.
    - Loading a truncated or corrupted file, a bare state dict where a
      resumable checkpoint is needed, or weights of another architecture
      raises :class:`CheckpointLoadError` naming the file and the problem.
      ``torch.load`` stays weights-only.

    ``save_checkpoint`` gathers RNG states from all ranks, so like every
    mmengine call site (``CheckpointHook``) it must be called on every rank.
    """

    # set by RNGIsolationMixin while validation runs
    _rng_before_val: Optional[dict] = None
    _rng_to_restore: Optional[dict] = None

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
