# N-FGSM (de Jorge et al. 2022) on MNIST at eps 0.3 with the FGSM-RS
# reproduction's net and schedule (fast-at-cnn_1xb100_mnist_fgsmrs.py): noise
# U(-2 eps, 2 eps), one step of eps, no projection to the eps-ball, loss
# CE(adv) only; the paper's defaults (it reports no MNIST recipe).
_base_ = ['./fast-at-cnn_1xb100_mnist_fgsmrs.py']

data_preprocessor = dict(attack=dict(_delete_=True, type='NFGSM', noise_ratio=2))
