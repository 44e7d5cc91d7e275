# FGSM-RS adversarial training of the small NF-ResNet on the bundled digits:
# the paper's recipe (loss CE(adv) only, a uniform start and one projected
# step of 1.25 eps) with the NoFrost demo model, AGC and schedule of
# nf-resnet18-w16_1xb64_digits_pgdat.py. Val split (seed 0, 16 px,
# 2026-12-02, 15 epochs): 96.5% clean / 56.9% PGD-20 (a 10-epoch eps warm-up:
# 97.9 / 55.9), no catastrophic overfitting.
_base_ = ['./nf-resnet18-w16_1xb64_digits_pgdat.py']

data_preprocessor = dict(
    attack=dict(_delete_=True, type='FGSMRS', eps=32, step_ratio=1.25),
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
