# NoFrost at eps 48/255 (the large-eps study, `python tools/demo.py --study eps`):
# nf-resnet18-w16_1xb64_digits_pgdat.py with eps 48/255 for training, robust
# validation and test and adaptive gradient clipping at 0.04 instead of 0.01,
# chosen on the val split (search table in configs/demo/README.md): same data,
# 15 epochs, PGD-5, mixed loss and warm-ups as BN-AT at this eps.
_base_ = ['./nf-resnet18-w16_1xb64_digits_pgdat.py']

eps = 48
data_preprocessor = dict(attack=dict(eps=eps))
optim_wrapper = dict(clip_grad=dict(clip_factor=0.04))
custom_hooks = [
    dict(
        type='AdversarialTrainingHook',
        eps_warmup=5,
        adv_val_interval=10,
        val_attack=dict(type='PGDAttack', eps=eps, steps=20, early_exit=True)),
]
test_attacks = [
    dict(type='PGDAttack', eps=eps, steps=20, early_exit=True, name='PGD-20'),
    dict(type='AutoAttack', eps=eps, version='standard', name='AutoAttack'),
]
