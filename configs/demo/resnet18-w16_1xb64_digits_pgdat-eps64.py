# BN-AT at eps 64/255 (the large-eps study, `python tools/demo.py --study eps`):
# resnet18-w16_1xb64_digits_pgdat.py with eps 64/255 for training, robust
# validation and test, everything else unchanged (same data, 15 epochs, PGD-5,
# mixed loss, eps and lr warm-ups as NoFrost at this eps). Val split, seed 0,
# 2026-12-01: see the search table in configs/demo/README.md.
_base_ = ['./resnet18-w16_1xb64_digits_pgdat.py']

eps = 64
data_preprocessor = dict(attack=dict(eps=eps))
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
