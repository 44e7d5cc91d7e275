"""Validation that never shifts NoFrostRunner's training RNG stream."""

from typing import Optional

from mmengine.hooks import Hook

from nofrost_mm.utils.rng_state import get_rng_state, set_rng_state


class _SaveRNGBeforeVal(Hook):
    """Saves the RNG states before any other ``before_val`` hook draws."""

    def __init__(self, owner: 'RNGIsolationMixin'):
        self.owner = owner

    def before_val(self, runner) -> None:
        self.owner.rng_before_val = get_rng_state()


class _RestoreRNGAfterVal(Hook):
    """Restores them after every other ``after_val`` hook has run."""

    def __init__(self, owner: 'RNGIsolationMixin'):
        self.owner = owner

    def after_val(self, runner) -> None:
        if self.owner.rng_before_val is not None:
            set_rng_state(self.owner.rng_before_val)
            self.owner.rng_before_val = None


class RNGIsolationMixin:
    """Validation of :class:`NoFrostRunner` runs on a saved RNG state.

    The val dataloader and the model draw from the global RNGs; restoring
    the state after validation keeps an uninterrupted run and a resumed one
    (which skips the validation of the epoch it resumes from) on one
    stream. Two hooks of the runner do it, the first ``before_val`` hook
    (priority HIGHEST) and the last ``after_val`` one (LOWEST), so that any
    loop that calls mmengine's val hooks is isolated, whatever its type.

    Attributes:
        rng_before_val (dict | None): The RNG states saved while validation
            runs (None otherwise): what a checkpoint saved during validation
            (a best checkpoint) stores, through :meth:`training_rng_state`.
    """

    rng_before_val: Optional[dict] = None

    def _register_rng_isolation_hooks(self) -> None:
        self.register_hook(_SaveRNGBeforeVal(self), priority='HIGHEST')
        self.register_hook(_RestoreRNGAfterVal(self), priority='LOWEST')

    def training_rng_state(self) -> dict:
        """The RNG states the training goes on with (those from before
        validation while it runs)."""
        return self.rng_before_val or get_rng_state()
