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
