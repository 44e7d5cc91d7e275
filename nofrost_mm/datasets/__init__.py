from .digits import SklearnDigits
from .corrupted_dataset import CorruptedDataset
from .corruption_benchmarks import CIFAR10C, ImageNetC
from .transforms import *  # noqa: F401,F403

__all__ = ['SklearnDigits']
__all__ += ['CorruptedDataset', 'ImageNetC', 'CIFAR10C']
