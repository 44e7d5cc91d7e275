# N-FGSM adversarial training (de Jorge et al. 2022) of the small BN ResNet on
# the bundled digits, the paper's recipe: loss CE(adv) only (no clean pass),
# one noisy FGSM step: noise U(-2 eps, 2 eps), step eps, no projection to the
# eps-ball (the paper's defaults), eps 32/255, lr and eps warm-up of the
# BN-AT config resnet18-w16_1xb64_digits_pgdat.py. Chosen on the val split
# (seed 0, 16 px, 2026-12-02, 15 epochs, clean / PGD-20): pure loss 96.9 /
# 77.4 in 34 s; the BN-AT mixed loss 0.5 CE(clean) + 0.5 CE(adv)
# (..._nfgsm-mixed.py) 97.9 / 75.7 in 48 s; PGD-5 BN-AT 98.3 / 76.7 in 71 s.
_base_ = ['./resnet18-w16_1xb64_digits_pgdat.py']

data_preprocessor = dict(
    attack=dict(_delete_=True, type='NFGSM', eps=32, noise_ratio=2),
    adv_loss_weight=1.0)

custom_hooks = [
    dict(
        type='AdversarialTrainingHook',
        eps_warmup=5,
        adv_val_interval=10,
        val_attack=dict(type='PGDAttack', eps=32, steps=20, early_exit=True)),
    # catastrophic-overfitting guard: PGD-5 and FGSM accuracy on 64 fixed val
    # images every 3 epochs (the setting that caught a real collapse in
    # tests/engine/hooks/test_catastrophic_overfitting_hook.py; fast
    # adversarial's early stop uses PGD-5 too), a warning (with the numbers
    # and work_dir/co_guard_last_good.pth) on a collapse
    dict(type='CatastrophicOverfittingHook', interval=3, num_samples=64,
         pgd_steps=5, action='warn'),
]
