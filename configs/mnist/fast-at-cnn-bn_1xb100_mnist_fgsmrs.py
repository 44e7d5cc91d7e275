# The FGSM-RS reproduction (fast-at-cnn_1xb100_mnist_fgsmrs.py) with BN after
# each conv (convs without bias): the BN arm of the BN / no-norm / NF
# comparison. The attack runs with the model in eval mode (running
# statistics), the training step in train mode (batch statistics).
_base_ = ['./fast-at-cnn_1xb100_mnist_fgsmrs.py']

model = dict(backbone=dict(norm_cfg=dict(type='BN')))
