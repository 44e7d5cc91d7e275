# NF-ResNet-26 (timm's nf_resnet26): nf-resnet50.py with another depth.
_base_ = ['./nf-resnet50.py']
model = dict(backbone=dict(depth=26))
