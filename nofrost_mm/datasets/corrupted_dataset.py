"""Sweep a dataset over corruptions and severities, corrupting on the fly."""

import copy
from typing import Sequence, Union

from mmpretrain.registry import DATASETS

from .transforms.corruption_functions import (
    ALL_CORRUPTIONS,
    IMAGENET_C_CORRUPTIONS,
    VALIDATION_CORRUPTIONS,
)
from .transforms.image_corruption import check_corruption, check_severity

CORRUPTION_SETS = {
    'imagenet-c': IMAGENET_C_CORRUPTIONS,
    'validation': VALIDATION_CORRUPTIONS,
    'all': ALL_CORRUPTIONS,
}


def resolve_corruptions(corruptions, key: str) -> tuple:
    """A corruption set name or a list of names, checked."""
    if isinstance(corruptions, str):
        if corruptions not in CORRUPTION_SETS:
            raise ValueError(
                f'{key}={corruptions!r}: give a list of corruption '
                f'names or one of {list(CORRUPTION_SETS)}'
            )
        return CORRUPTION_SETS[corruptions]
    corruptions = tuple(corruptions)
    if not corruptions:
        raise ValueError(f'{key} is empty')
    for name in corruptions:
        check_corruption(name, key)
    return corruptions


def check_packs_corruption_keys(pipeline, owner: str) -> None:
    """The metric needs ``corruption``/``severity`` in the packed metainfo."""
    pack = [t for t in getattr(pipeline, 'transforms', []) if type(t).__name__ == 'PackInputs']
    if pack and not {'corruption', 'severity'} <= set(pack[-1].meta_keys):
        raise ValueError(
            f"{owner}: the pipeline's PackInputs must keep the corruption and "
            "severity for CorruptionAccuracy: dict(type='PackInputs', "
            "meta_keys=('sample_idx', 'corruption', 'severity'))"
        )


@DATASETS.register_module()
class CorruptedDataset:
    """Every sample of a dataset under every corruption and severity.

    Sample ``k`` of this dataset is sample ``k % len(dataset)`` of the wrapped
    dataset with ``corruption`` and ``severity`` added to its data info
    (corruption-major, then severity); the wrapped dataset's pipeline must
    contain an :class:`ImageCorruption` without fixed corruption and severity
    (it reads them from the sample) and keep them through ``PackInputs``'s
    ``meta_keys`` for :class:`CorruptionAccuracy`. ``sample_idx`` is the
    index in this dataset, so each corrupted copy is distinct.

    Args:
        dataset (dict | BaseDataset): The clean dataset (config).
        corruptions (str | Sequence[str]): Names, or ``'imagenet-c'`` (the 15
            ImageNet-C corruptions), ``'validation'`` (the 4 others) or
            ``'all'``. Defaults to ``'imagenet-c'``.
        severities (Sequence[int]): Severities in 1..5.
            Defaults to ``(1, 2, 3, 4, 5)``.
        lazy_init (bool): Build the wrapped dataset config lazily (its data
            list is loaded on first use), as mmengine's dataset wrappers do.
            Defaults to False.

    Example:
        >>> test_dataloader = dict(dataset=dict(
        ...     type='CorruptedDataset', corruptions=['fog', 'snow'],
        ...     dataset=dict(type='SklearnDigits', split='test', pipeline=[
        ...         dict(type='ImageCorruption'),
        ...         dict(type='PackInputs', meta_keys=(
        ...             'sample_idx', 'corruption', 'severity'))])))
    """

    def __init__(
        self,
        dataset: Union[dict, object],
        corruptions: Union[str, Sequence[str]] = 'imagenet-c',
        severities: Sequence[int] = (1, 2, 3, 4, 5),
        lazy_init: bool = False,
    ):
        self.corruptions = resolve_corruptions(corruptions, 'CorruptedDataset.corruptions')
        self.severities = tuple(severities)
        if not self.severities:
            raise ValueError('CorruptedDataset.severities is empty')
        for s in self.severities:
            check_severity(s, 'CorruptedDataset.severities')
        if isinstance(dataset, dict):
            dataset = DATASETS.build(dict(dataset, lazy_init=True) if lazy_init else dataset)
        self.dataset = dataset
        corrupting = [
            t
            for t in getattr(self.dataset.pipeline, 'transforms', [])
            if type(t).__name__ == 'ImageCorruption'
        ]
        if (
            not corrupting
            or corrupting[0].corruption is not None
            or corrupting[0].severity is not None
        ):
            raise ValueError(
                'CorruptedDataset: the wrapped dataset pipeline needs '
                "dict(type='ImageCorruption') without corruption/severity"
            )
        check_packs_corruption_keys(self.dataset.pipeline, 'CorruptedDataset')
        self._metainfo = copy.deepcopy(self.dataset.metainfo)
        self._metainfo.update(corruptions=self.corruptions, severities=self.severities)

    @property
    def metainfo(self) -> dict:
        return copy.deepcopy(self._metainfo)

    def full_init(self):
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()

    def __len__(self) -> int:
        return len(self.dataset) * len(self.corruptions) * len(self.severities)

    def get_data_info(self, idx: int) -> dict:
        if not 0 <= idx < len(self):
            raise IndexError(f'CorruptedDataset index {idx} out of range')
        n = len(self.dataset)
        group, i = divmod(idx, n)
        c, s = divmod(group, len(self.severities))
        info = copy.deepcopy(self.dataset.get_data_info(i))
        info.update(corruption=self.corruptions[c], severity=self.severities[s], sample_idx=idx)
        return info

    def __getitem__(self, idx: int) -> dict:
        return self.dataset.pipeline(self.get_data_info(idx))

    def get_subset_(self, indices):
        raise NotImplementedError(
            'CorruptedDataset: subset the wrapped dataset (indices=...) instead'
        )
