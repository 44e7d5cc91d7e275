"""scikit-learn's bundled handwritten digits as an mmpretrain dataset (no download)."""

import gzip
import importlib.util
import json
import os.path as osp
from functools import lru_cache
from typing import List, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

DIGITS_SPLITS = ('train', 'val', 'trainval', 'test')


# the fixed split, computed once with scikit-learn (see ``compute_split_indices``)
SPLITS_FILE = osp.join(osp.dirname(__file__), 'splits', 'sklearn_digits.json')


@lru_cache(maxsize=1)
def _load_digits() -> Tuple[np.ndarray, np.ndarray]:
    """``load_digits()``'s images (N, 8, 8) and labels, read once per process.

    Read from the CSV that scikit-learn bundles, the way ``load_digits``
    reads it, without importing scikit-learn (about 1 s of every process
    that builds the digits); ``load_digits`` itself if the file moved.
    """
    spec = importlib.util.find_spec('sklearn')
    path = (
        spec
        and spec.submodule_search_locations
        and osp.join(spec.submodule_search_locations[0], 'datasets', 'data', 'digits.csv.gz')
    )
    if path and osp.isfile(path):
        with gzip.open(path, 'rt') as f:
            data = np.loadtxt(f, delimiter=',')
        images = data[:, :-1].reshape(-1, 8, 8)
        target = data[:, -1].astype(int)
    else:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images, target = digits.images, digits.target
    images.flags.writeable = target.flags.writeable = False  # shared
    return images, target


@lru_cache(maxsize=1)
def _stored_splits() -> dict:
    with open(SPLITS_FILE) as f:
        splits = {k: np.asarray(v) for k, v in json.load(f).items() if k in ('val', 'test')}
    for indices in splits.values():
        indices.flags.writeable = False  # shared by every dataset of the process
    return splits


@DATASETS.register_module()
class SklearnDigits(BaseDataset):
    """The 1797 8x8 handwritten digits of ``sklearn.datasets.load_digits``.

    Every image is scaled from 0-16 to 0-255, upsampled bilinearly to
    ``img_size`` and repeated to 3 channels, giving ``uint8`` HxWx3 arrays
    under ``img`` like mmpretrain's in-memory datasets (CIFAR10, MNIST), so
    the standard pipelines, samplers and evaluators work unchanged.

    The split is fixed: a stratified 20% test set (360 images, seed 0) and,
    from the remaining 1437 ``trainval`` images, a stratified 20% ``val`` set
    (288 images, seed 1) for choosing recipes without touching ``test``;
    ``train`` is the other 1149.

    Args:
        split (str): One of ``'train'``, ``'val'``, ``'trainval'``, ``'test'``.
            Defaults to ``'train'``.
        img_size (int): Side of the upsampled images. Defaults to 32.
        pipeline (Sequence): Processing pipeline. Defaults to ``()``.
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset`
            (``indices``, ``lazy_init``, ...).

    Example:
        >>> from mmpretrain.registry import DATASETS
        >>> ds = DATASETS.build(dict(type='SklearnDigits', split='test'))
        >>> len(ds), ds[0]['img'].shape
        (360, (32, 32, 3))
    """

    METAINFO = {'classes': tuple(str(i) for i in range(10))}

    def __init__(self, split: str = 'train', img_size: int = 32, pipeline=(), **kwargs):
        if split not in DIGITS_SPLITS:
            raise ValueError(f'SklearnDigits: split={split!r} is not one of {DIGITS_SPLITS}')
        if not isinstance(img_size, int) or img_size < 8:
            raise ValueError(f'SklearnDigits: img_size must be an int >= 8, got {img_size!r}')
        self.split = split
        self.img_size = img_size
        kwargs.setdefault('test_mode', split == 'test')
        super().__init__(ann_file='', data_root='', pipeline=pipeline, **kwargs)

    @staticmethod
    def split_indices(split: str) -> np.ndarray:
        """Indices into ``load_digits()`` of a split (fixed, stratified).

        Read from ``splits/sklearn_digits.json``, which holds what
        :meth:`compute_split_indices` gives (a test checks they agree), so the
        split neither needs scikit-learn at run time nor moves with its version.
        """
        stored = _stored_splits()
        if split in stored:
            return stored[split]
        rest = np.setdiff1d(np.arange(len(_load_digits()[1])), stored['test'])
        return rest if split == 'trainval' else np.setdiff1d(rest, stored['val'])

    @staticmethod
    def compute_split_indices(split: str) -> np.ndarray:
        """The split from scikit-learn: a stratified 20% test set (360 images,
        seed 0), then a stratified 20% val set of the rest (seed 1)."""
        from sklearn.model_selection import train_test_split

        labels = _load_digits()[1]
        all_idx = np.arange(len(labels))
        trainval, test = train_test_split(all_idx, test_size=360, stratify=labels, random_state=0)
        train, val = train_test_split(
            trainval, test_size=0.2, stratify=labels[trainval], random_state=1
        )
        return np.sort(dict(train=train, val=val, trainval=trainval, test=test)[split])

    def load_data_list(self) -> List[dict]:
        all_images, all_labels = _load_digits()
        idx = self.split_indices(self.split)
        images = torch.from_numpy(all_images[idx]).float()[:, None] / 16.0
        images = F.interpolate(
            images, size=(self.img_size, self.img_size), mode='bilinear', align_corners=False
        )
        images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
        images = images.repeat(1, 3, 1, 1).permute(0, 2, 3, 1).numpy()
        return [
            dict(img=np.ascontiguousarray(img), gt_label=int(label))
            for img, label in zip(images, all_labels[idx])
        ]

    def extra_repr(self) -> List[str]:
        return [f'Split: \t{self.split}', f'Image size: \t{self.img_size}']
