# BN-AT on CIFAR-10 with N-FGSM: nf-resnet18_1xb128_cifar10_nfgsm.py on
# mmpretrain's BN ResNet-18 for CIFAR (as resnet18_1xb128_cifar10_pgdat.py).
_base_ = ['./nf-resnet18_1xb128_cifar10_nfgsm.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet_CIFAR',
        depth=18,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch'))
