"""On-the-fly ImageNet-C corruptions as a pipeline transform."""

from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

from .corruption_functions import ALL_CORRUPTIONS, corrupt


@TRANSFORMS.register_module()
class ImageCorruption(BaseTransform):
    """Corrupt ``img`` with one of the ImageNet-C corruptions at a severity.

    The corruption and severity are fixed by the arguments, or, when left
    None, read from the sample (``results['corruption']`` and
    ``results['severity']``, as :class:`CorruptedDataset` provides them to
    sweep all corruptions and severities in one test run). The corruption's
    randomness comes from a NumPy seed derived from ``seed``, the sample's
    ``sample_idx``, the corruption and the severity, so a sample is corrupted
    the same way in every run, process and worker; NumPy's global random
    state is restored afterwards. Uses ``imagecorruptions`` (with the three
    functions it breaks under NumPy 2 ported, see ``corruption_functions``).

    Required keys: ``img`` (uint8, H x W x 3, H and W >= 32), ``sample_idx``
    and, when not fixed, ``corruption`` and ``severity``.
    Modified keys: ``img``. Added keys: ``corruption``, ``severity``.

    Args:
        corruption (str, optional): One of the 15 ImageNet-C corruptions or
            the 4 validation ones (``speckle_noise``, ``gaussian_blur``,
            ``spatter``, ``saturate``). Defaults to None (from the sample).
        severity (int, optional): 1 to 5. Defaults to None (from the sample).
        channel_order (str): Channel order of ``img``: ``'rgb'`` or
            ``'bgr'`` (mmcv's image loading gives BGR); the corruptions work
            in RGB. Defaults to ``'rgb'``.
        seed (int): Base seed. Defaults to 0.

    Example:
        >>> test_pipeline = [
        ...     dict(type='LoadImageFromFile'),
        ...     dict(type='ImageCorruption', corruption='fog', severity=3,
        ...          channel_order='bgr'),
        ...     dict(type='PackInputs')]
    """

    def __init__(
        self,
        corruption: Optional[str] = None,
        severity: Optional[int] = None,
        channel_order: str = 'rgb',
        seed: int = 0,
    ):
        if corruption is not None:
            check_corruption(corruption, 'ImageCorruption.corruption')
        if severity is not None:
            check_severity(severity, 'ImageCorruption.severity')
        if channel_order not in ('rgb', 'bgr'):
            raise ValueError(
                f"ImageCorruption.channel_order must be 'rgb' or 'bgr', got {channel_order!r}"
            )
        self.corruption = corruption
        self.severity = severity
        self.channel_order = channel_order
        self.seed = seed

    def transform(self, results: dict) -> dict:
        corruption = self.corruption or results.get('corruption')
        severity = self.severity or results.get('severity')
        if corruption is None or severity is None:
            raise KeyError(
                'ImageCorruption: give corruption and severity, or '
                'use a dataset that sets them (CorruptedDataset)'
            )
        check_corruption(corruption, 'corruption')
        check_severity(severity, 'severity')
        img = results['img']
        if self.channel_order == 'bgr':
            img = img[..., ::-1]
        seed = (
            self.seed * 1_000_003
            + int(results.get('sample_idx', 0)) * 7919
            + ALL_CORRUPTIONS.index(corruption) * 31
            + severity
        ) % 2**32
        state = np.random.get_state()
        np.random.seed(seed)
        try:
            img = corrupt(np.ascontiguousarray(img), corruption, severity)
        finally:
            np.random.set_state(state)
        if self.channel_order == 'bgr':
            img = img[..., ::-1]
        results['img'] = np.ascontiguousarray(img)
        results['corruption'] = corruption
        results['severity'] = severity
        return results

    def __repr__(self):
        return (
            f'{type(self).__name__}(corruption={self.corruption!r}, '
            f'severity={self.severity}, channel_order='
            f'{self.channel_order!r}, seed={self.seed})'
        )


def check_corruption(name, key: str) -> None:
    """Raise naming ``key`` and the allowed names if ``name`` is unknown."""
    if name not in ALL_CORRUPTIONS:
        raise ValueError(f'{key}={name!r} is not a corruption; allowed: {list(ALL_CORRUPTIONS)}')


def check_severity(severity, key: str) -> None:
    """Raise naming ``key`` unless ``severity`` is an int in 1..5."""
    if (
        not isinstance(severity, (int, np.integer))
        or isinstance(severity, bool)
        or not 1 <= severity <= 5
    ):
        raise ValueError(f'{key}={severity!r} must be an int in 1..5')
