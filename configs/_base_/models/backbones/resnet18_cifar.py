# mmpretrain's BN ResNet-18 for CIFAR: the BN-AT baselines swap it into the
# CIFAR NoFrost configs (model.backbone).
backbone = dict(type='ResNet_CIFAR', depth=18, num_stages=4, out_indices=(3,), style='pytorch')
