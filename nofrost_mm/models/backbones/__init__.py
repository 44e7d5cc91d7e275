from .dual_bn_converter import convert_dual_bn
from .mnist_convnet import MNISTConvNet
from .nf_resnet import NFResNet, NFResNet_CIFAR
from .norm_free_converter import NormFreeConverter, NormFreeOptions, convert_to_normfree

__all__ = [
    'MNISTConvNet',
    'NFResNet',
    'NFResNet_CIFAR',
    'NormFreeConverter',
    'NormFreeOptions',
    'convert_to_normfree',
    'convert_dual_bn',
]
