"""Load an image file; on an unreadable one raise with its path, or skip and count."""

from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmengine.logging import print_log
from mmpretrain.registry import TRANSFORMS

from nofrost_mm.utils.config_checks import check_choice, check_number

ON_BAD_IMAGE = ('raise', 'skip')


class BadImageError(OSError):
    """An image file that is missing, empty, truncated or not an image."""


@TRANSFORMS.register_module()
class CheckedLoadImageFromFile(LoadImageFromFile):
    """``LoadImageFromFile`` that names the bad file, or skips and counts it.

    mmcv's transform fails on an undecodable image with a bare
    ``AssertionError`` (or, with ``ignore_empty=True``, silently drops it).
    Here a missing, empty, truncated or non-image file either raises
    :class:`BadImageError` with its path and the reason
    (``on_bad_image='raise'``), or is skipped (``'skip'``): the transform
    returns None, so a training dataset (``mmengine.dataset.BaseDataset``)
    draws another sample, and the skip is logged with the path and the count
    so far. More than ``max_skipped`` skips in one process raise, since a
    dataset that broken should be fixed rather than trained on. Test-mode
    datasets cannot skip (mmengine refuses None there): use ``'raise'``.

    Counts are per process (each dataloader worker counts its own).

    Args:
        on_bad_image (str): ``'raise'`` or ``'skip'``. Defaults to ``'raise'``.
        max_skipped (int, optional): With ``'skip'``, how many bad images one
            process may skip; None for no limit. Defaults to None.
        **kwargs: Arguments of ``mmcv.transforms.LoadImageFromFile``
            (``to_float32``, ``color_type``, ``imdecode_backend``,
            ``backend_args``). ``imdecode_backend='pillow'`` also rejects
            truncated JPEGs, which OpenCV decodes partially.

    Example:
        >>> train_pipeline = [
        ...     dict(type='CheckedLoadImageFromFile', on_bad_image='skip',
        ...          max_skipped=100),
        ...     dict(type='RandomResizedCrop', scale=224),
        ...     dict(type='PackInputs')]
    """

    def __init__(self, on_bad_image: str = 'raise', max_skipped: Optional[int] = None, **kwargs):
        check_choice('CheckedLoadImageFromFile.on_bad_image', on_bad_image, ON_BAD_IMAGE)
        if max_skipped is not None:
            check_number(
                'CheckedLoadImageFromFile.max_skipped', max_skipped, integer=True, min_value=0
            )
        if kwargs.get('ignore_empty'):
            raise ValueError(
                'CheckedLoadImageFromFile: use on_bad_image=\'skip\' instead of ignore_empty=True'
            )
        super().__init__(**kwargs)
        self.on_bad_image = on_bad_image
        self.max_skipped = max_skipped
        self.skipped = 0

    def transform(self, results: dict) -> Optional[dict]:
        path = results['img_path']
        img, reason = None, None
        try:
            img_bytes = fileio.get(path, backend_args=self.backend_args)
            if not img_bytes:
                reason = 'the file is empty'
            else:
                img = mmcv.imfrombytes(
                    img_bytes, flag=self.color_type, backend=self.imdecode_backend
                )
                if img is None:
                    reason = 'it cannot be decoded (truncated or not an image)'
        except Exception as error:  # missing file, decoder errors
            reason = f'{type(error).__name__}: {error}'
        if reason is None:
            if self.to_float32:
                img = img.astype(np.float32)
            results.update(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
            return results
        if self.on_bad_image == 'raise':
            raise BadImageError(f'cannot read image {path}: {reason}')
        self.skipped += 1
        if self.max_skipped is not None and self.skipped > self.max_skipped:
            raise BadImageError(
                f'cannot read image {path}: {reason}; that is {self.skipped} '
                f'bad images, more than max_skipped={self.max_skipped}'
            )
        print_log(
            f'CheckedLoadImageFromFile: skipped {path} ({reason}); {self.skipped} skipped so far',
            logger='current',
            level=30,
        )
        return None

    def __repr__(self):
        return (
            super().__repr__()[:-1] + f', on_bad_image='
            f'{self.on_bad_image!r}, max_skipped={self.max_skipped})'
        )
