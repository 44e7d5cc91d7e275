# BN-AT on the bundled digits: PGD-5 adversarial training at eps 32/255 of the
# small BN ResNet of resnet18-w16_1xb64_digits.py, loss 0.5 CE(clean) + 0.5
# CE(adv) in two passes (each keeps its own BN batch statistics). eps 32: a
# standard model keeps ~1% under AutoAttack there (configs/demo/README.md).
_base_ = [
    '../_base_/models/resnet18-w16_cifar.py',
    '../_base_/datasets/digits_bs64.py',
    '../_base_/schedules/digits_sgd_15e_warmup.py',
    '../_base_/default_runtime.py',
    '../_base_/adversarial/pgd-at.py',
]
model = _base_.adv_model
data_preprocessor = _base_.adv_preprocessor
default_hooks = dict(
    checkpoint=dict(save_best=['accuracy/top1', 'robust_accuracy/top1'], rule='greater')
)
randomness = dict(seed=0)
channels_last = True  # NHWC, as resnet18-w16_1xb64_digits.py
