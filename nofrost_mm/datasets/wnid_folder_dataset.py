"""Class folders named by WordNet id, labelled by a fixed ImageNet class list."""

from typing import List, Optional, Sequence, Union

from mmengine.fileio import get_file_backend
from mmengine.logging import print_log
from mmpretrain.datasets import CustomDataset
from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
from mmpretrain.datasets.custom import find_folders, get_samples
from mmpretrain.registry import DATASETS

from .imagenet_class_lists import class_list_file, imagenet_indices, load_wnids

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif')


@DATASETS.register_module()
class WnidFolderDataset(CustomDataset):
    """Images in ``<data_root>/<wnid>/...`` with the labels of a class list.

    The layout of ImageNet's ``train``/``val`` folders and of the released
    ImageNet-R, ImageNet-A and ImageNet-Sketch archives. Labels are positions
    in the class list (sorted WordNet ids), whatever folders are present, so
    a partial copy keeps the labels of the full dataset. Every folder must be
    a class of the list: the first one that is not is named in the error.

    When the list is a subset of ImageNet-1k, ``metainfo['class_subset']``
    holds the ImageNet-1k indices of its classes: a 1000-class model is
    evaluated on the subset by keeping those logits before the arg-max
    (:class:`ClassSubsetHook`), and ``gt_label`` is the index in the subset
    (0..199 for ImageNet-R/-A), as in the official evaluation scripts.
    ``metainfo['classes']`` are the class names, ``metainfo['wnids']`` the
    WordNet ids.

    Args:
        data_root (str): Folder holding the class folders.
        class_list (str | Sequence[str]): ``'imagenet'`` (1000 classes),
            ``'imagenet-r'``, ``'imagenet-a'`` (the shipped lists, see
            ``nofrost_mm/datasets/class_lists``) or sorted WordNet ids of
            ImageNet-1k classes. Defaults to ``'imagenet'``.
        data_prefix (str | dict): Sub-folder of ``data_root``.
            Defaults to ''.
        extensions (Sequence[str]): Image file extensions.
            Defaults to ``IMAGE_EXTENSIONS``.
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset`
            (``pipeline``, ``indices``, ``test_mode``...).

    Example:
        >>> ds = WnidFolderDataset('data/imagenet-r', class_list='imagenet-r',
        ...                        pipeline=[dict(type='LoadImageFromFile'),
        ...                                  dict(type='PackInputs')])
    """

    CLASS_LIST = 'imagenet'

    def __init__(
        self,
        data_root: str = '',
        class_list: Optional[Union[str, Sequence[str]]] = None,
        data_prefix: Union[str, dict] = '',
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        metainfo: Optional[dict] = None,
        **kwargs,
    ):
        name = type(self).__name__
        if kwargs.get('ann_file'):
            raise ValueError(f'{name} reads the class folders of data_root; it takes no ann_file')
        class_list = self.CLASS_LIST if class_list is None else class_list
        if isinstance(class_list, str):
            self.class_list_source = class_list_file(class_list)
            wnids = load_wnids(class_list)
        else:
            wnids = tuple(class_list)
            self.class_list_source = 'class_list'
            if not wnids or list(wnids) != sorted(set(wnids)):
                raise ValueError(f'{name}.class_list must be sorted, unique WordNet ids')
        self.wnids = wnids
        indices = imagenet_indices(wnids)
        meta = dict(classes=tuple(IMAGENET_CATEGORIES[i] for i in indices), wnids=wnids)
        if len(wnids) < len(IMAGENET_CATEGORIES):
            meta['class_subset'] = indices
        meta.update(metainfo or {})
        kwargs.setdefault('test_mode', True)
        super().__init__(
            data_root=data_root,
            data_prefix=data_prefix,
            extensions=extensions,
            metainfo=meta,
            **kwargs,
        )

    def load_data_list(self) -> List[dict]:
        name = type(self).__name__
        root = self.img_prefix
        backend = get_file_backend(root, enable_singleton=True)
        if not backend.isdir(root):
            raise FileNotFoundError(
                f'{name}: {root} is not a folder (expected '
                '<data_root>/<wnid>/<image>, the layout of the release)'
            )
        folders, _ = find_folders(root, backend)
        index = {w: i for i, w in enumerate(self.wnids)}
        unknown = [f for f in folders if f not in index]
        if unknown:
            raise ValueError(
                f'{name}: class folder {unknown[0]!r} in {root} is not one of '
                f'the {len(self.wnids)} classes of {self.class_list_source} '
                f'({len(unknown)} unknown folder(s)); the folders must be '
                'WordNet ids of the class list, as in the released archive'
            )
        samples, empty = get_samples(
            root, {f: index[f] for f in folders}, self.is_valid_file, backend
        )
        if not samples:
            raise RuntimeError(
                f'{name}: no image ({", ".join(self.extensions)}) in the class folders of {root}'
            )
        absent = len(self.wnids) - len(folders) + len(empty or ())
        if absent:
            print_log(
                f'{name}: {absent} of the {len(self.wnids)} classes have no image in {root}',
                logger='current',
                level=30,
            )
        return [
            dict(img_path=backend.join_path(root, path), gt_label=label) for path, label in samples
        ]


def check_head_width(
    width: Optional[int], subset_size: int, num_outputs: int = 1000, dataset: str = 'the dataset'
) -> None:
    """Raise a clear error when a head cannot be scored on a class subset.

    Args:
        width (int, optional): ``head.num_classes`` (None: unknown, not
            checked).
        subset_size (int): Classes of the subset dataset.
        num_outputs (int): Size of the index space. Defaults to 1000.
        dataset (str): Dataset name for the message.
    """
    if width is not None and width != num_outputs:
        raise ValueError(
            f'{dataset} has {subset_size} of the {num_outputs} ImageNet-1k classes '
            f'and is scored on those {subset_size} logits of a {num_outputs}-class '
            f'model, but model.head.num_classes={width}: test an ImageNet-1k '
            f'model (num_classes={num_outputs})'
        )
