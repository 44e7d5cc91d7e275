# BN-AT baseline of nf-resnet50_8xb32_in1k_nfgsm.py: the same N-FGSM recipe
# (and catastrophic-overfitting guard) on mmpretrain's BN ResNet-50, i.e.
# resnet50_8xb32_in1k_pgdat.py with the single-step attack.
_base_ = ['./nf-resnet50_8xb32_in1k_nfgsm.py', '../_base_/models/backbones/resnet50.py']

model = dict(backbone=dict(_delete_=True, **_base_.backbone))
