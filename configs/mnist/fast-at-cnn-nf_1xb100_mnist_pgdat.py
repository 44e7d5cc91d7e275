# The normalizer-free net of fast-at-cnn-nf_1xb100_mnist_fgsmrs.py (scaled WS
# convs, MNIST's pixel statistics as input scale, AGC) trained with the
# CPU-sized PGD-40 AT of fast-at-cnn_1xb100_mnist_pgdat.py: the NF arm of the
# BN / no-norm / NF comparison under multi-step AT. No catastrophic-overfitting
# guard: PGD-40 is the multi-step attack the guard would compare with.
_base_ = ['./fast-at-cnn-nf_1xb100_mnist_fgsmrs.py']

data_preprocessor = dict(attack=dict(_base_.pgd40, _delete_=True))
custom_hooks = [_base_.eps_warmup_hook]
