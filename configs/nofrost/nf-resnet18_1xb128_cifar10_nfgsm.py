# NoFrost on CIFAR-10 with N-FGSM (de Jorge et al. 2022; their defaults at
# eps 8/255: noise k = 2, step eps, no projection): the recipe of
# nf-resnet18_1xb128_cifar10_pgdat.py with the single-step attack and the
# catastrophic-overfitting guard (PGD-10 / FGSM on 1000 fixed test-set
# images every epoch; action 'warn').
_base_ = ['./nf-resnet18_1xb128_cifar10_pgdat.py']

data_preprocessor = dict(
    attack=dict(_delete_=True, type='NFGSM', eps=8, noise_ratio=2))

custom_hooks = [
    dict(
        type='AdversarialTrainingHook',
        adv_val_interval=10,
        adv_val_last=0.1,
        val_attack=dict(type='PGDAttack', eps=8, steps=5)),
    dict(type='CatastrophicOverfittingHook', interval=1, num_samples=1000,
         action='warn'),
]
