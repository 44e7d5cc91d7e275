# BN-AT baseline of NoFrost: the same recipe as nf-resnet50_8xb32_in1k_pgdat.py
# (PGD-10 at eps 8/255, two forward passes, dropout 0.25, drop path 0.1, label
# smoothing 0.1) on a standard ResNet-50 with batch normalization.
_base_ = ['./nf-resnet50_8xb32_in1k_pgdat.py', '../_base_/models/backbones/resnet50.py']

model = dict(backbone=dict(_delete_=True, **_base_.backbone))
