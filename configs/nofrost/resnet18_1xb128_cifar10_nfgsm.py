# BN-AT on CIFAR-10 with N-FGSM: nf-resnet18_1xb128_cifar10_nfgsm.py on
# mmpretrain's BN ResNet-18 for CIFAR (as resnet18_1xb128_cifar10_pgdat.py).
_base_ = ['./nf-resnet18_1xb128_cifar10_nfgsm.py', '../_base_/models/backbones/resnet18_cifar.py']

model = dict(backbone=dict(_delete_=True, **_base_.backbone))
