"""Several pre-generated views of every training image, augmented alike (NoFrost*)."""

import copy
import os.path as osp
import random
from typing import Dict, List, Optional, Union

import mmcv
import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine import fileio
from mmpretrain.registry import DATASETS, TRANSFORMS

LOADING_TRANSFORMS = ('LoadImageFromFile', 'CheckedLoadImageFromFile')


@DATASETS.register_module()
class MultiViewDataset:
    """Every sample of a dataset as a list of views of its image (NoFrost*).

    View ``name`` of a sample is the file at the same path relative to the
    wrapped dataset's image prefix under ``views[name]``: folders of
    pre-generated copies of the training set, such as DeepAugment's
    EDSR/CAE images (``DeepAugment/EDSR_distort_imagenet.py`` and
    ``CAE_distort_imagenet.py`` of https://github.com/hendrycks/imagenet-r)
    or stylized images (https://github.com/rgeirhos/Stylized-ImageNet; the
    texture-debiased training of Li et al. 2021,
    https://github.com/LiYingwei/ShapeTextureDebiasedTraining). A missing
    view file raises an error naming the file, the view and the sample.

    The wrapped dataset's pipeline runs once per view with the same random
    draws: its first transform (``LoadImageFromFile`` or
    ``CheckedLoadImageFromFile``) loads each view, which is resized to the
    size of the original image (DeepAugment's EDSR images, for one, are
    larger), then the random state of ``random``, NumPy and torch is reset
    to the same point before the rest of the pipeline, so every view of a
    sample gets the same crop, flip and any other random transform. After
    the last view the state moves on, so samples still differ. With
    ``shared_augmentation=False`` each view draws its own (the official
    NoFrost* crops each view independently), and ``view_pipelines`` gives
    a view its own transforms after loading.

    An item is the list of the packed views (original first when
    ``include_original``); ``collate_fn=dict(type='multi_view_collate')``
    flattens a batch of N samples into N x V samples, so that the mean loss
    over the batch (clean and adversarial terms of
    :class:`AdvImageClassifier`, TRADES, pure AT) is the mean over the views
    of each view's loss.

    Args:
        dataset (dict | BaseDataset): The original images with the training
            pipeline (config or object).
        views (dict[str, str]): View name -> root folder of its copies.
        include_original (bool): Also return the original image, as the
            first view. Defaults to True.
        lazy_init (bool): Build the wrapped dataset lazily (its data list is
            loaded on first use). Defaults to False.
        max_refetch (int): How many other samples to try when a loading
            transform skips a bad image (``CheckedLoadImageFromFile`` with
            ``on_bad_image='skip'``). Defaults to 1000.
        shared_augmentation (bool): Every view of a sample gets the same
            random draws (crop, flip, ...). False: each view its own.
            Defaults to True.
        view_pipelines (dict[str, list], optional): View name ('original' or
            a key of ``views``) -> the transforms applied to it after
            loading, instead of the wrapped dataset's. Defaults to None.

    Example:
        >>> train_dataloader = dict(
        ...     collate_fn=dict(type='multi_view_collate'),
        ...     dataset=dict(type='MultiViewDataset', views=dict(
        ...         deepaugment_edsr='data/imagenet-DeepAug-EDSR/train',
        ...         deepaugment_cae='data/imagenet-DeepAug-CAE/train'),
        ...         dataset=dict(type='ImageNet', data_root='data/imagenet',
        ...                      split='train', pipeline=train_pipeline)))
    """

    def __init__(
        self,
        dataset: Union[dict, object],
        views: Dict[str, str],
        include_original: bool = True,
        lazy_init: bool = False,
        max_refetch: int = 1000,
        shared_augmentation: bool = True,
        view_pipelines: Optional[Dict[str, list]] = None,
    ):
        if not isinstance(views, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in views.items()
        ):
            raise TypeError(
                f'MultiViewDataset.views must be a dict of view name -> root folder, got {views!r}'
            )
        if not views and not include_original:
            raise ValueError(
                'MultiViewDataset: no view (views is empty and include_original=False)'
            )
        if 'original' in views:
            raise ValueError(
                "MultiViewDataset.views: 'original' is the name of "
                'the unchanged image; name the view otherwise'
            )
        if isinstance(dataset, dict):
            dataset = DATASETS.build(dict(dataset, lazy_init=True) if lazy_init else dataset)
        self.dataset = dataset
        self.views = dict(views)
        self.include_original = include_original
        self.max_refetch = max_refetch
        transforms = list(getattr(dataset.pipeline, 'transforms', []))
        if not transforms or type(transforms[0]).__name__ not in LOADING_TRANSFORMS:
            raise ValueError(
                'MultiViewDataset: the wrapped dataset pipeline must start with '
                f'one of {LOADING_TRANSFORMS} (it loads every view), got '
                f'{[type(t).__name__ for t in transforms[:1]]}'
            )
        self._load = transforms[0]
        self._augment = Compose(transforms[1:])
        self.shared_augmentation = shared_augmentation
        view_pipelines = dict(view_pipelines or {})
        unknown = sorted(set(view_pipelines) - set(self.view_names))
        if unknown:
            raise KeyError(
                f'MultiViewDataset.view_pipelines: {unknown} are not '
                f'views; the views are {list(self.view_names)}'
            )
        # built in mmpretrain's registry, as the wrapped dataset's pipeline
        self._view_augment = {
            name: Compose([TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline])
            for name, pipeline in view_pipelines.items()
        }
        for name, root in self.views.items():
            if not fileio.isdir(root):
                raise FileNotFoundError(f'MultiViewDataset: view {name!r}: {root} is not a folder')

    @property
    def metainfo(self) -> dict:
        meta = copy.deepcopy(self.dataset.metainfo)
        meta['views'] = self.view_names
        return meta

    @property
    def view_names(self) -> tuple:
        """Names of the views of every item, in order."""
        return (('original',) if self.include_original else ()) + tuple(self.views)

    def full_init(self):
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()

    def __len__(self) -> int:
        return len(self.dataset)

    def get_data_info(self, idx: int) -> dict:
        return self.dataset.get_data_info(idx)

    def view_paths(self, idx: int) -> Dict[str, str]:
        """The image file of each view of sample ``idx``, checked to exist."""
        img_path = self.get_data_info(idx)['img_path']
        prefix = getattr(self.dataset, 'img_prefix', None) or self.dataset.data_prefix.get(
            'img_path', ''
        )
        rel = osp.relpath(img_path, prefix)
        if rel.startswith('..'):
            raise ValueError(
                f'MultiViewDataset: {img_path} is not under the dataset\'s image prefix {prefix}'
            )
        paths = {'original': img_path} if self.include_original else {}
        for name, root in self.views.items():
            path = osp.join(root, rel)
            if not fileio.exists(path):
                raise FileNotFoundError(
                    f'MultiViewDataset: view {name!r} of sample {idx} ({img_path}) '
                    f'is missing: {path} (each view folder must hold every image '
                    f'at the same relative path, here {rel})'
                )
            paths[name] = path
        return paths

    def __getitem__(self, idx: int) -> List[dict]:
        for _ in range(self.max_refetch + 1):
            items = self.prepare_views(idx)
            if items is not None:
                return items
            # a loading transform skipped a bad image: draw another sample
            idx = np.random.randint(0, len(self))
        raise RuntimeError(f'MultiViewDataset: no loadable sample after {self.max_refetch} retries')

    def prepare_views(self, idx: int):
        """The packed views of sample ``idx`` (None if one was skipped)."""
        info = self.get_data_info(idx)
        paths = self.view_paths(idx)
        original = self._load(copy.deepcopy(info))
        if original is None:  # CheckedLoadImageFromFile skipped a bad image
            return None
        size = original['img'].shape[:2]
        state = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        items = []
        for name, path in paths.items():
            if name == 'original':
                loaded = original
            else:
                loaded = self._load(dict(copy.deepcopy(info), img_path=path))
                if loaded is None:
                    return None
                if loaded['img'].shape[:2] != size:
                    loaded['img'] = mmcv.imresize(loaded['img'], size[::-1])
                    loaded['img_shape'] = size
                    loaded['ori_shape'] = size
            if self.shared_augmentation:
                random.setstate(state[0])
                np.random.set_state(state[1])
                torch.set_rng_state(state[2])
            item = self._view_augment.get(name, self._augment)(loaded)
            if item is None:
                return None
            items.append(item)
        return items

    def get_subset_(self, indices):
        self.dataset.get_subset_(indices)
