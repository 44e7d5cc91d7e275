# N-FGSM adversarial training (de Jorge et al. 2022) of the small BN ResNet on
# the bundled digits: the BN-AT recipe of resnet18-w16_1xb64_digits_pgdat.py
# (eps 32/255, 0.5 CE(clean) + 0.5 CE(adv), lr and eps warm-up) with one
# noisy FGSM step instead of PGD-5: noise U(-2 eps, 2 eps), step eps, no
# projection to the eps-ball (the paper's defaults, not tuned). Val split,
# seed 0, 15 epochs: 97.2% clean / 74.7% PGD-20 (PGD-5 BN-AT: 97.6 / 74.3),
# at about half the cost per iteration (benchmarks/README.md).
_base_ = ['./resnet18-w16_1xb64_digits_pgdat.py']

data_preprocessor = dict(
    attack=dict(_delete_=True, type='NFGSM', eps=32, noise_ratio=2))

custom_hooks = [
    dict(
        type='AdversarialTrainingHook',
        eps_warmup=5,
        adv_val_interval=5,
        val_attack=dict(type='PGDAttack', eps=32, steps=20)),
    # catastrophic-overfitting guard: PGD-10 and FGSM accuracy on 128 fixed
    # val images every 3 epochs, a warning (with the numbers and
    # work_dir/co_guard_last_good.pth) on a collapse
    dict(type='CatastrophicOverfittingHook', interval=3, num_samples=128,
         action='warn'),
]
