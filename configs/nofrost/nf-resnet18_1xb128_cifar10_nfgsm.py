# NoFrost on CIFAR-10 with N-FGSM (de Jorge et al. 2022; their defaults at
# eps 8/255: noise k = 2, step eps, no projection): the recipe of
# nf-resnet18_1xb128_cifar10_pgdat.py with the single-step attack and the
# catastrophic-overfitting guard (PGD-10 / FGSM on 1000 fixed test-set
# images every epoch; action 'warn').
_base_ = ['./nf-resnet18_1xb128_cifar10_pgdat.py']

data_preprocessor = dict(attack=dict(_delete_=True, type='NFGSM', noise_ratio=2))
custom_hooks = [
    _base_.at_hook,
    dict(type='CatastrophicOverfittingHook', interval=1, num_samples=1000, action='warn'),
]
