"""ImageNet-A (natural adversarial examples of 200 ImageNet classes) as released."""

from mmpretrain.registry import DATASETS

from .wnid_folder_dataset import WnidFolderDataset


@DATASETS.register_module()
class ImageNetA(WnidFolderDataset):
    """ImageNet-A (Hendrycks et al. 2021), ``imagenet-a/<wnid>/*.jpg``.

    7,500 real images of 200 ImageNet-1k classes that ResNet-50s misclassify,
    the folders of ``imagenet-a.tar`` from
    https://github.com/hendrycks/natural-adv-examples. The class list ships
    in the package (``class_lists/imagenet_a_wnids.txt``, from that
    repository's ``eval.py``, ``thousand_k_to_200``). Labels are 0..199
    (sorted WordNet ids) and ``metainfo['class_subset']`` holds the
    ImageNet-1k indices of the 200 classes: with :class:`ClassSubsetHook` a
    1000-class model is scored on those 200 logits, as the official
    ``eval.py`` does (``output[:, indices_in_1k]``).

    Args:
        data_root (str): The ``imagenet-a`` folder; the other arguments and
            the use are those of :class:`ImageNetR`.
    """

    CLASS_LIST = 'imagenet-a'
