# BN-AT on CIFAR-10: the recipe of nf-resnet18_1xb128_cifar10_pgdat.py on
# mmpretrain's BN ResNet-18 for CIFAR.
_base_ = ['./nf-resnet18_1xb128_cifar10_pgdat.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet_CIFAR',
        depth=18,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch'))
