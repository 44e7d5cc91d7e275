# Turning an existing mmpretrain config NoFrost: NormFreeConverter wraps the
# backbone config of mmpretrain's ResNet-50 and removes its BN layers (scaled
# weight standardization, alpha/beta residual scaling, zero-init last gains).
# The rest is the NoFrost recipe of nf-resnet50_8xb32_in1k_pgdat.py.
_base_ = ['./nf-resnet50_8xb32_in1k_pgdat.py', '../_base_/models/backbones/resnet50.py']

model = dict(
    backbone=dict(_delete_=True, type='NormFreeConverter', backbone=_base_.backbone, alpha=0.2)
)
