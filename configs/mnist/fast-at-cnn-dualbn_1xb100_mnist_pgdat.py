# The CPU-sized PGD-40 AT with BN (fast-at-cnn-bn_1xb100_mnist_pgdat.py) with
# every BN split into a clean and an adversarial branch (dual BN, AdvProp /
# MBN-AT): the third arm of the BN / NF comparison. Dual BN needs a clean
# pass, so the loss is the mixed 0.5 CE(clean) + 0.5 CE(adv) where the BN
# and NF arms train on CE(adv) only; the deployed (tested) branch is the
# adversarial one (model.backbone.norm_cfg.deploy_branch=clean tests the
# other).
_base_ = ['./fast-at-cnn-bn_1xb100_mnist_pgdat.py']

model = dict(adv_loss_weight=0.5, backbone=dict(norm_cfg=dict(type='DualBN', deploy_branch='adv')))
