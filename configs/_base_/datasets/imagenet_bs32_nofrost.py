# ImageNet for PGD adversarial training (NoFrost's official attack): each
# training batch is attacked with L-inf PGD, eps 8/255, 10 steps, step size
# min(1.25*eps, eps+4)/steps, random start, on the model in eval mode; the
# loss is 0.5 * CE(clean) + 0.5 * CE(adv) over two separate forward passes.
# Pair with model.type='AdvImageClassifier' and AdversarialTrainingHook.
_base_ = ['./imagenet_bs32.py']

data_preprocessor = dict(
    type='PGDDataPreprocessor',
    attack=dict(type='PGDAttack', eps=8, steps=10),
    adv_loss_weight=0.5,
    adv_forward='separate',
    attack_model_mode='eval',
)

# `tools/test.py` reports clean accuracy, PGD-20 and AutoAttack (the headline:
# PGD with few steps overestimates NoFrost, see configs/nofrost/README.md);
# `--num-samples 5000` is RobustBench's ImageNet subset, `--attacks none` the
# clean top-1 on the whole val set.
# PGD-20 with early exit: a sample is broken by the first iterate that
# misclassifies it and leaves the batch (cheaper, never weaker than the
# last iterate). `tools/test.py ... --cascade` runs AutoAttack only on
# PGD-20's survivors: the worst case over both, far cheaper on large sets.
test_attacks = [
    dict(type='PGDAttack', eps=8, steps=20, early_exit=True, name='PGD-20'),
    dict(type='AutoAttack', eps=8, version='standard', name='AutoAttack'),
]
