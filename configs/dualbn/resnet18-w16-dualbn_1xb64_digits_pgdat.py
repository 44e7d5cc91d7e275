# Dual-BN AT on the bundled digits (AdvProp's auxiliary BN, Xie et al. 2020;
# MBN-AT): resnet18-w16_1xb64_digits_pgdat.py (BN-AT, PGD-5 at eps 32/255,
# 0.5 CE(clean) + 0.5 CE(adv) in two passes) with every BN split into a clean
# and an adversarial branch. The clean pass trains the clean branch, the
# attack and the adversarial pass the adversarial one; validation and
# tools/test.py use deploy_branch ('adv': --cfg-options
# model.backbone.norm_cfg.deploy_branch=adv).
_base_ = ['../demo/resnet18-w16_1xb64_digits_pgdat.py']

model = dict(backbone=dict(norm_cfg=dict(type='DualBN', deploy_branch='clean')))
