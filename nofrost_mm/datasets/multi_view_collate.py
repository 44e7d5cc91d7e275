"""Collate a batch of multi-view samples into one flat batch."""

from typing import Callable, Sequence, Union

from mmengine.registry import FUNCTIONS


# mmpretrain has no FUNCTIONS registry of its own: mmengine's (the Runner
# builds collate_fn from it) finds this with or without a default scope
@FUNCTIONS.register_module()
def multi_view_collate(data_batch: Sequence, collate: Union[str, Callable] = 'pseudo_collate'):
    """Flatten N items of V views (:class:`MultiViewDataset`) into N x V samples.

    Sample-major order (the views of the first sample, then of the second...),
    collated by ``collate``. The data preprocessor, the attack and the loss
    then see an ordinary batch: its mean loss is the mean over the views of
    each view's loss, with data-parallel training unchanged. Items that are
    not lists (single-view datasets) pass through.

    Args:
        data_batch (Sequence): Items from the dataset (lists of packed views).
        collate (str | Callable): The collate function applied to the flat
            list, a name in mmengine's FUNCTIONS. Defaults to
            ``'pseudo_collate'`` (the Runner's default).

    Returns:
        The collated flat batch.

    Example:
        >>> train_dataloader = dict(
        ...     collate_fn=dict(type='multi_view_collate'),
        ...     dataset=dict(type='MultiViewDataset', ...))
    """
    flat = []
    for item in data_batch:
        flat.extend(item if isinstance(item, (list, tuple)) else [item])
    if isinstance(collate, str):
        fn = FUNCTIONS.get(collate)
        if fn is None:
            raise KeyError(
                f'multi_view_collate: collate={collate!r} is not in '
                "mmengine's FUNCTIONS (e.g. 'pseudo_collate', "
                "'default_collate')"
            )
        collate = fn
    return collate(flat)
