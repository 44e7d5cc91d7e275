"""ImageNet-1k, ImageNet-R and ImageNet-A classes by WordNet id (package data).

The lists are ``class_lists/*.txt`` (one WordNet id a line, sorted, ``#``
comments naming the public release each list was copied from). Sorted WordNet
ids are the class order of ImageNet-1k models (torchvision's ImageFolder,
mmpretrain's ``ImageNet``, timm): ``imagenet_indices(wnids)`` are the model
outputs of a subset's classes.
"""

import os.path as osp
from functools import lru_cache
from typing import Sequence, Tuple

CLASS_LIST_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'class_lists')
CLASS_LIST_FILES = {
    'imagenet': 'imagenet_wnids.txt',
    'imagenet-r': 'imagenet_r_wnids.txt',
    'imagenet-a': 'imagenet_a_wnids.txt',
}


def class_list_file(name: str) -> str:
    """Path of a shipped class list (``'imagenet'``, ``'imagenet-r'``, ``'imagenet-a'``)."""
    if name not in CLASS_LIST_FILES:
        raise ValueError(f'unknown class list {name!r}; shipped: {sorted(CLASS_LIST_FILES)}')
    return osp.join(CLASS_LIST_DIR, CLASS_LIST_FILES[name])


@lru_cache(maxsize=None)
def load_wnids(name: str) -> Tuple[str, ...]:
    """The WordNet ids of a shipped class list, in class-index order.

    Args:
        name (str): ``'imagenet'`` (1000), ``'imagenet-r'`` or
            ``'imagenet-a'`` (200 each).

    Returns:
        tuple[str]: Sorted WordNet ids.
    """
    path = class_list_file(name)
    with open(path) as f:
        wnids = tuple(line.strip() for line in f if line.strip() and not line.startswith('#'))
    if list(wnids) != sorted(set(wnids)):
        raise ValueError(f'{path}: WordNet ids must be unique and sorted')
    return wnids


def imagenet_indices(wnids: Sequence[str]) -> Tuple[int, ...]:
    """ImageNet-1k class indices (model outputs) of WordNet ids.

    Args:
        wnids (Sequence[str]): WordNet ids of ImageNet-1k classes.

    Returns:
        tuple[int]: Their indices among the 1000 sorted ImageNet-1k ids.
    """
    index = {w: i for i, w in enumerate(load_wnids('imagenet'))}
    missing = [w for w in wnids if w not in index]
    if missing:
        raise ValueError(
            f'{missing[0]!r} is not an ImageNet-1k WordNet id ({class_list_file("imagenet")})'
        )
    return tuple(index[w] for w in wnids)
