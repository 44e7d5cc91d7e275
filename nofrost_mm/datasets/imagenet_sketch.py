"""ImageNet-Sketch (sketches of the 1000 ImageNet classes) as released."""

from mmpretrain.registry import DATASETS

from .wnid_folder_dataset import WnidFolderDataset


@DATASETS.register_module()
class ImageNetSketch(WnidFolderDataset):
    """ImageNet-Sketch (Wang et al. 2019), ``sketch/<wnid>/*.JPEG``.

    50,889 black-and-white sketches, about 50 for each of the 1000
    ImageNet-1k classes (https://github.com/HaohanWang/ImageNet-Sketch; the
    archive unpacks to ``sketch/<wnid>/``). Labels are the ImageNet-1k
    indices, so any ImageNet model is tested on all its 1000 logits.

    Args:
        data_root (str): The ``sketch`` folder.
        **kwargs: Other arguments of :class:`WnidFolderDataset`.

    Example:
        >>> test_dataloader = dict(dataset=dict(
        ...     type='ImageNetSketch', data_root='data/imagenet-sketch/sketch',
        ...     pipeline=[...]))
    """

    CLASS_LIST = 'imagenet'
