# NoFrost's official adversarial training (CIFAR-10, ImageNet; leaves set
# model = _base_.adv_model, data_preprocessor = _base_.adv_preprocessor):
# PGD-10 at eps 8/255 (step min(1.25 eps, eps + 4) / steps, random start,
# model in eval mode), loss 0.5 CE(clean) + 0.5 CE(adv) in two forward
# passes; robust accuracy under PGD-5 every 10 epochs and in the last 10% of
# them; the test attacks of RobustBench. Every attack follows
# data_preprocessor.eps.
adv_model = dict(type='AdvImageClassifier', adv_loss_weight=0.5, adv_forward='separate')
adv_preprocessor = dict(type='PGDDataPreprocessor', eps=8, attack=dict(type='PGDAttack', steps=10))
at_hook = dict(
    type='AdversarialTrainingHook',
    adv_val_interval=10,
    adv_val_last=0.1,
    val_attack=dict(type='PGDAttack', steps=5),
)
custom_hooks = [at_hook]

# `tools/test.py` reports clean accuracy, PGD-20 and AutoAttack (the headline:
# PGD with few steps overestimates NoFrost, configs/nofrost/README.md);
# `--attacks none` evaluates clean accuracy only, `--cascade` runs AutoAttack
# only on PGD-20's survivors.
test_attacks = [
    dict(type='PGDAttack', steps=20, early_exit=True, name='PGD-20'),
    dict(type='AutoAttack', version='standard', name='AutoAttack'),
]
