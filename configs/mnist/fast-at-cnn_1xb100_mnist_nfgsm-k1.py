# N-FGSM on MNIST at eps 0.3 with a noise of eps instead of the paper's 2 eps:
# U(-eps, eps), one step of eps, no projection (so at most 2 eps, where
# fast-at-cnn_1xb100_mnist_nfgsm.py reaches 3 eps = 0.9 of the pixel range
# and overfitted catastrophically from the first epoch). The noise is
# FGSM-RS's start; what differs from the reproduction is the step (eps, not
# 1.25 eps) and the missing projection.
_base_ = ['./fast-at-cnn_1xb100_mnist_nfgsm.py']

data_preprocessor = dict(attack=dict(noise_ratio=1))
