# The FGSM-RS reproduction (fast-at-cnn_1xb100_mnist_fgsmrs.py) made
# normalizer-free: scaled weight-standardised convs (gain 1 on pixels, ReLU's
# gain after a ReLU), MNIST's own pixel statistics as the input scale (the NF
# nets see it directly; the attack stays in pixel space, so eps is
# unchanged), and NFNets' adaptive gradient clipping, classifier unclipped
# (the NoFrost demo configs' setting). The NF arm of the BN / no-norm / NF
# comparison.
_base_ = ['./fast-at-cnn_1xb100_mnist_fgsmrs.py']

model = dict(backbone=dict(conv_cfg=dict(type='ScaledWSConv')))
# train split, 0-255 scale (the usual 0.1307 / 0.3081 of [0, 1])
data_preprocessor = dict(mean=[33.32], std=[78.57])
optim_wrapper = dict(
    type='AGCOptimWrapper',
    clip_grad=dict(type='agc', clip_factor=0.01, eps=1e-3, exclude=('head.fc',)),
)
