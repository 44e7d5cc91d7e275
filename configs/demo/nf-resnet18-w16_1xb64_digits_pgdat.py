# NoFrost on the bundled digits: PGD-5 adversarial training of a small
# normalizer-free ResNet-18 (16 base channels), same data and attack as
# resnet18-w16_1xb64_digits_pgdat.py. NF-AT collapsed to chance without an eps
# warm-up in the project's CPU trials, hence the warm-up and gradient clipping.
_base_ = [
    '../_base_/models/nf-resnet18_cifar.py',
    '../_base_/datasets/digits_bs64.py',
    '../_base_/schedules/digits_sgd_15e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='AdvImageClassifier',
    backbone=dict(stem_channels=16, base_channels=16),
    head=dict(in_channels=128))
data_preprocessor = dict(
    type='PGDDataPreprocessor',
    # the digits' own statistics (train split, 0-255 scale): without a
    # normalizer the net sees the input scale directly, and unit-variance
    # inputs trained faster (standard training, 5 epochs, val split: 57.6%
    # against 25.7% with mean 0 / std 255). The attack is in pixel space, so
    # eps is unaffected; BN nets absorb the scale in their first BN.
    mean=[77.8, 77.8, 77.8],
    std=[82.5, 82.5, 82.5],
    attack=dict(type='PGDAttack', eps=32, steps=5),
    adv_loss_weight=0.5,
    # no normalizer: one pass over clean+adv equals two (up to dropout masks)
    adv_forward='concat')
optim_wrapper = dict(clip_grad=dict(max_norm=1.0))

custom_hooks = [
    dict(
        type='AdversarialTrainingHook',
        eps_warmup=5,
        adv_val_interval=5,
        val_attack=dict(type='PGDAttack', eps=32, steps=20)),
]
default_hooks = dict(
    checkpoint=dict(
        save_best=['accuracy/top1', 'robust_accuracy/top1'], rule='greater'))
randomness = dict(seed=0)
