# mmpretrain's BN ResNet-50 backbone with NoFrost's drop path 0.1: the BN-AT
# baselines swap it into the NoFrost configs (model.backbone).
backbone = dict(
    type='ResNet', depth=50, num_stages=4, out_indices=(3,), style='pytorch', drop_path_rate=0.1
)
