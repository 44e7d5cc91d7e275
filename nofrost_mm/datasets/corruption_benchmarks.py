"""The released ImageNet-C and CIFAR-10-C files as mmpretrain datasets."""

import os.path as osp
from typing import List, Sequence, Union

import numpy as np
from mmpretrain.datasets import BaseDataset, CustomDataset
from mmpretrain.registry import DATASETS

from .corrupted_dataset import check_packs_corruption_keys, resolve_corruptions
from .transforms.image_corruption import check_severity


class _CorruptionBenchmark(BaseDataset):
    """The released files of a corruption benchmark, test-mode.

    The corruption names and severities are checked, then the files
    (:meth:`_check_files`) before any is read, and the pipeline must keep
    ``corruption`` and ``severity`` in ``PackInputs``'s ``meta_keys``.
    Arguments as :class:`ImageNetC`'s.
    """

    def __init__(
        self,
        data_root: str,
        corruptions: Union[str, Sequence[str]] = 'imagenet-c',
        severities: Sequence[int] = (1, 2, 3, 4, 5),
        pipeline: Sequence = (),
        **kwargs,
    ):
        name = type(self).__name__
        self.corruptions = resolve_corruptions(corruptions, f'{name}.corruptions')
        self.severities = tuple(severities)
        if not self.severities:
            raise ValueError(f'{name}.severities is empty')
        for s in self.severities:
            check_severity(s, f'{name}.severities')
        self._check_files(data_root)
        kwargs.setdefault('test_mode', True)
        super().__init__(ann_file='', data_root=data_root, pipeline=pipeline, **kwargs)
        check_packs_corruption_keys(self.pipeline, name)

    def _check_files(self, data_root: str) -> None:
        raise NotImplementedError


@DATASETS.register_module()
class ImageNetC(_CorruptionBenchmark):
    """ImageNet-C as released: ``data_root/<corruption>/<severity>/<wnid>/*.JPEG``.

    Each ``(corruption, severity)`` folder is read with mmpretrain's
    :class:`CustomDataset` (class folders, image extensions); the class list
    is that of the first folder and every other folder must have the same.
    Data infos carry ``corruption`` and ``severity`` for
    :class:`CorruptionAccuracy` (keep them in ``PackInputs``'s
    ``meta_keys``). The images are already corrupted: do not add
    :class:`ImageCorruption` to the pipeline.

    Args:
        data_root (str): The ImageNet-C root.
        corruptions (str | Sequence[str]): Names or ``'imagenet-c'`` (15),
            ``'validation'`` (4, ImageNet-C's extra folder), ``'all'``.
            Defaults to ``'imagenet-c'``.
        severities (Sequence[int]): Defaults to ``(1, 2, 3, 4, 5)``.
        pipeline (Sequence): Processing pipeline. Defaults to ``()``.
        **kwargs: Other arguments of :class:`BaseDataset`.

    Example:
        >>> ds = ImageNetC('data/imagenet-c', corruptions=['fog'], pipeline=[
        ...     dict(type='LoadImageFromFile'), dict(type='PackInputs',
        ...     meta_keys=('sample_idx', 'corruption', 'severity'))])
    """

    def _check_files(self, data_root: str) -> None:
        for c in self.corruptions:
            for s in self.severities:
                folder = osp.join(data_root, c, str(s))
                if not osp.isdir(folder):
                    raise FileNotFoundError(
                        f'ImageNetC: {folder} is missing (expected '
                        'data_root/<corruption>/<severity>/<class>/<image>)'
                    )

    def load_data_list(self) -> List[dict]:
        data_list, classes = [], None
        for c in self.corruptions:
            for s in self.severities:
                folder = CustomDataset(
                    data_root=osp.join(self.data_root, c, str(s)),
                    classes=classes,
                    test_mode=True,
                    lazy_init=False,
                    serialize_data=False,
                )
                if classes is None:
                    classes = folder.CLASSES
                elif tuple(folder.CLASSES) != tuple(classes):
                    raise ValueError(
                        f'ImageNetC: {c}/{s} has other classes '
                        f'than {self.corruptions[0]}/'
                        f'{self.severities[0]}'
                    )
                for info in folder.data_list:
                    info.update(corruption=c, severity=s)
                    data_list.append(info)
        self._metainfo.setdefault('classes', tuple(classes))
        return data_list


@DATASETS.register_module()
class CIFAR10C(_CorruptionBenchmark):
    """CIFAR-10-C as released: ``data_root/<corruption>.npy`` and ``labels.npy``.

    Each corruption file holds the test set at severities 1 to 5 stacked in
    that order (5 x 10000 uint8 images of 32 x 32 x 3, RGB); ``labels.npy``
    holds the matching labels. Files are memory-mapped. Data infos carry
    ``img``, ``gt_label``, ``corruption`` and ``severity`` (keep the last two
    in ``PackInputs``'s ``meta_keys``).

    Args:
        data_root (str): Folder with the ``.npy`` files.
        corruptions (str | Sequence[str]): Names or a set name
            (``'imagenet-c'``: the 15 common ones, ``'validation'``,
            ``'all'``). Defaults to ``'imagenet-c'``.
        severities (Sequence[int]): Defaults to ``(1, 2, 3, 4, 5)``.
        pipeline (Sequence): Processing pipeline. Defaults to ``()``.
        **kwargs: Other arguments of :class:`BaseDataset`.
    """

    METAINFO = {
        'classes': (
            'airplane',
            'automobile',
            'bird',
            'cat',
            'deer',
            'dog',
            'frog',
            'horse',
            'ship',
            'truck',
        )
    }

    def __init__(self, *args, **kwargs):
        kwargs.setdefault('serialize_data', False)  # keep images memory-mapped
        super().__init__(*args, **kwargs)

    def _check_files(self, data_root: str) -> None:
        for name in self.corruptions + ('labels',):
            path = osp.join(data_root, f'{name}.npy')
            if not osp.isfile(path):
                raise FileNotFoundError(f'CIFAR10C: {path} is missing')

    def load_data_list(self) -> List[dict]:
        labels = np.load(osp.join(self.data_root, 'labels.npy'))
        if len(labels) % 5:
            raise ValueError('CIFAR10C: labels.npy must hold 5 severities')
        per_severity = len(labels) // 5
        data_list = []
        for c in self.corruptions:
            images = np.load(osp.join(self.data_root, f'{c}.npy'), mmap_mode='r')
            if images.shape[0] != len(labels) or images.shape[-1] != 3:
                raise ValueError(
                    f'CIFAR10C: {c}.npy has shape {images.shape}, expected ({len(labels)}, H, W, 3)'
                )
            for s in self.severities:
                start = (s - 1) * per_severity
                for i in range(start, start + per_severity):
                    data_list.append(
                        dict(img=images[i], gt_label=int(labels[i]), corruption=c, severity=s)
                    )
        return data_list

    def prepare_data(self, idx: int):
        info = self.get_data_info(idx)
        info['img'] = np.array(info['img'])  # read this image from the map
        return self.pipeline(info)
