# BN-AT on CIFAR-10: the recipe of nf-resnet18_1xb128_cifar10_pgdat.py on
# mmpretrain's BN ResNet-18 for CIFAR.
_base_ = ['./nf-resnet18_1xb128_cifar10_pgdat.py', '../_base_/models/backbones/resnet18_cifar.py']

model = dict(backbone=dict(_delete_=True, **_base_.backbone))
