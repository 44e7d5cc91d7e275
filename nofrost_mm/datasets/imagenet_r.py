"""ImageNet-R (renditions of 200 ImageNet classes) as released."""

from mmpretrain.registry import DATASETS

from .wnid_folder_dataset import WnidFolderDataset


@DATASETS.register_module()
class ImageNetR(WnidFolderDataset):
    """ImageNet-R (Hendrycks et al. 2021), ``imagenet-r/<wnid>/*.jpg``.

    30,000 renditions (art, cartoons, sketches, toys...) of 200 ImageNet-1k
    classes, the folders of ``imagenet-r.tar`` from
    https://github.com/hendrycks/imagenet-r. The class list ships in the
    package (``class_lists/imagenet_r_wnids.txt``, copied from that
    repository's ``eval.py``). Labels are 0..199 (sorted WordNet ids) and
    ``metainfo['class_subset']`` holds the ImageNet-1k indices of the 200
    classes: with :class:`ClassSubsetHook` a 1000-class model is scored on
    those 200 logits, as the official ``eval.py`` does
    (``output[:, imagenet_r_mask]``).

    Args:
        data_root (str): The ``imagenet-r`` folder.
        **kwargs: Other arguments of :class:`WnidFolderDataset`.

    Example:
        >>> test_dataloader = dict(dataset=dict(
        ...     type='ImageNetR', data_root='data/imagenet-r', pipeline=[...]))
        >>> # in the plug-in's default_runtime.py already
        >>> default_hooks = dict(class_subset=dict(type='ClassSubsetHook'))
    """

    CLASS_LIST = 'imagenet-r'
