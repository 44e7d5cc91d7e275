"""Let ``torch.load(weights_only=True)`` read mmengine checkpoints.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10
checkpoints carry a few non-tensor objects in ``message_hub`` and ``meta``
(upstream: open-mmlab/mmengine issue 1655, PR 1650, which turns weights-only
loading off instead). Here weights-only loading stays on and exactly the
objects mmengine writes are allow-listed:

- ``HistoryBuffer`` (the message hub's logged scalars), whose
  ``statistics_methods`` dict pickles its own methods as
  ``getattr(HistoryBuffer, 'mean')``: ``getattr`` is replaced by a lookup
  that only resolves those methods;
- numpy arrays, dtypes and scalars (``HistoryBuffer`` histories, the seed),
  under both the numpy 1 (``numpy.core``) and numpy 2 (``numpy._core``)
  names, so checkpoints move between the two.
"""

import pickle

import numpy as np
import torch


def _history_buffer_method(owner, name):
    """The only ``getattr`` an mmengine checkpoint needs."""
    from mmengine.logging.history_buffer import HistoryBuffer

    # the four built-in statistics are registered lazily, at first __init__
    allowed = {'min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods}
    if owner is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'weights-only load refused getattr({owner!r}, {name!r}): only '
        'HistoryBuffer statistics methods are allowed (nofrost_mm)'
    )


def mmengine_checkpoint_globals():
    """The allow-list entries (objects, or ``(object, pickled name)``)."""
    from mmengine.logging.history_buffer import HistoryBuffer

    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    dtype_classes = [
        type(np.dtype(name))
        for name in (
            'float16',
            'float32',
            'float64',
            'int8',
            'int16',
            'int32',
            'int64',
            'uint8',
            'uint16',
            'uint32',
            'uint64',
            'bool',
        )
    ]
    entries = [
        HistoryBuffer,
        np.ndarray,
        np.dtype,
        *dtype_classes,
        (_history_buffer_method, '__builtin__.getattr'),
        (_history_buffer_method, 'builtins.getattr'),
    ]
    for core in ('numpy.core', 'numpy._core'):
        entries += [
            (_reconstruct, f'{core}.multiarray._reconstruct'),
            (scalar, f'{core}.multiarray.scalar'),
        ]
    return entries


def register_checkpoint_safe_globals():
    """Add mmengine's checkpoint objects to torch's weights-only allow-list."""
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:  # torch < 2.4 has no weights-only default
        return
    add_safe_globals(mmengine_checkpoint_globals())
