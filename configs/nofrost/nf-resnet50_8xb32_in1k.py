# Standard (non-adversarial) training of NF-ResNet-50 on ImageNet with the
# NoFrost recipe: the reference point for clean accuracy.
_base_ = [
    '../_base_/models/nf-resnet50.py',
    '../_base_/datasets/imagenet_bs32.py',
    '../_base_/schedules/imagenet_bs256_nofrost_90e.py',
    '../_base_/default_runtime.py',
]
