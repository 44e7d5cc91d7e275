# The CPU-sized PGD-40 AT (fast-at-cnn_1xb100_mnist_pgdat.py) with BN after
# each conv (convs without bias): the BN arm of the BN / no-norm / NF
# comparison under multi-step AT, where the NoFrost paper makes its claim.
_base_ = ['./fast-at-cnn_1xb100_mnist_pgdat.py']

model = dict(backbone=dict(norm_cfg=dict(type='BN')))
