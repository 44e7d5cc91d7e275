from .corrupted_dataset import CorruptedDataset
from .corruption_benchmarks import CIFAR10C, ImageNetC
from .digits import SklearnDigits
from .imagenet_a import ImageNetA
from .imagenet_r import ImageNetR
from .imagenet_sketch import ImageNetSketch
from .multi_view_collate import multi_view_collate
from .multi_view_dataset import MultiViewDataset
from .transforms import *  # noqa: F401,F403
from .wnid_folder_dataset import WnidFolderDataset

__all__ = [
    'CIFAR10C',
    'CorruptedDataset',
    'ImageNetA',
    'ImageNetC',
    'ImageNetR',
    'ImageNetSketch',
    'MultiViewDataset',
    'SklearnDigits',
    'WnidFolderDataset',
    'multi_view_collate',
]
