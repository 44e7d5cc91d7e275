# NF-ResNet-101 (timm's nf_resnet101): nf-resnet50.py with another depth.
_base_ = ['./nf-resnet50.py']
model = dict(backbone=dict(depth=101))
