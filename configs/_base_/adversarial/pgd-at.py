# PGD adversarial training on the digits demo: the training attack and loss
# (leaves set model = _base_.adv_model, data_preprocessor =
# _base_.adv_preprocessor, with their changes), the eps warm-up, robust
# validation and robust test attacks. data_preprocessor.eps is the one eps:
# every attack here follows it.
# PGD-5 at eps 32/255, loss 0.5 CE(clean) + 0.5 CE(adv) in two passes
adv_model = dict(type='AdvImageClassifier', adv_loss_weight=0.5, adv_forward='separate')
adv_preprocessor = dict(type='PGDDataPreprocessor', eps=32, attack=dict(type='PGDAttack', steps=5))
at_hook = dict(
    type='AdversarialTrainingHook',
    # linear eps warm-up over 5 epochs, with the lr warm-up of
    # digits_sgd_15e_warmup.py: BN-AT and NF-AT train worse without both
    # (configs/demo/README.md)
    eps_warmup=5,
    # robust validation every 10 epochs and in the last 10%: training is
    # bit-identical either way (validation runs on a saved RNG)
    adv_val_interval=10,
    # early exit: a sample is broken at the first iterate that
    # misclassifies it (never weaker than the last iterate, cheaper)
    val_attack=dict(type='PGDAttack', steps=20, early_exit=True),
)
custom_hooks = [at_hook]

# `tools/test.py` reports clean accuracy, PGD-20 and AutoAttack (the headline)
# on the test split; `--attacks none` evaluates clean accuracy only, and
# `--cascade` runs AutoAttack only on PGD-20's survivors.
test_attacks = [
    dict(type='PGDAttack', steps=20, early_exit=True, name='PGD-20'),
    dict(type='AutoAttack', version='standard', name='AutoAttack'),
]
