# FGSM-RS adversarial training of the small NF-ResNet on the bundled digits:
# the NoFrost recipe of nf-resnet18-w16_1xb64_digits_pgdat.py with one FGSM
# step of 1.25 eps from a uniform start instead of PGD-5. Val split, seed 0,
# 15 epochs: 98.6% clean / 52.4% PGD-20, no catastrophic overfitting.
_base_ = ['./nf-resnet18-w16_1xb64_digits_pgdat.py']

data_preprocessor = dict(
    attack=dict(_delete_=True, type='FGSMRS', eps=32, step_ratio=1.25))

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
