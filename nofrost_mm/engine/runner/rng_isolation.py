"""Validation that never shifts NoFrostRunner's training RNG stream."""
from typing import Optional

from nofrost_mm.utils.rng_state import get_rng_state, set_rng_state


class RNGIsolationMixin:
    """Validation of :class:`NoFrostRunner` runs on a saved RNG state.

    The val dataloader and the model draw from the global RNGs; restoring
    the state after validation keeps an uninterrupted run and a resumed one
    (which skips the validation of the epoch it resumes from) on one
    stream. ``_rng_before_val`` is what a checkpoint saved during validation
    (a best checkpoint) stores.
    """

    _rng_before_val: Optional[dict] = None

    def build_val_loop(self, loop):
        loop = super().build_val_loop(loop)
        if not getattr(loop, '_nofrost_own_rng', False):
            run = loop.run

            def run_on_saved_rng():
                self._rng_before_val = get_rng_state()
                try:
                    return run()
                finally:
                    set_rng_state(self._rng_before_val)
                    self._rng_before_val = None

            loop.run = run_on_saved_rng
            loop._nofrost_own_rng = True
        return loop
