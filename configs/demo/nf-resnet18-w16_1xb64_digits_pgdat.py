# NoFrost on the bundled digits: resnet18-w16_1xb64_digits_pgdat.py (PGD-5 at
# eps 32/255, 0.5 CE(clean) + 0.5 CE(adv)) on a normalizer-free ResNet-18 with
# 16 base channels; recipe evidence in configs/demo/README.md.
_base_ = [
    '../_base_/models/nf-resnet18_cifar.py',
    '../_base_/datasets/digits_bs64.py',
    '../_base_/schedules/digits_sgd_15e_warmup.py',
    '../_base_/default_runtime.py',
    '../_base_/adversarial/pgd-at.py',
]
model = dict(
    _base_.adv_model,
    # no normalizer: one pass over clean + adv equals two (up to dropout)
    adv_forward='concat',
    # unit last gains: SkipInit's zero gains with alpha 0.2 left the net near
    # chance; unit gains diverge at lr 0.1 without AGC, hence AGC below
    backbone=dict(stem_channels=16, base_channels=16, zero_init_last=False),
    head=dict(in_channels=128),
)
data_preprocessor = dict(
    _base_.adv_preprocessor,
    # the digits' own statistics (train split, 0-255 scale): an NF net sees
    # the input scale directly (BN nets absorb it); the attack is in pixel
    # space, so eps is unaffected
    mean=[77.8, 77.8, 77.8],
    std=[82.5, 82.5, 82.5],
)
# NFNets' adaptive gradient clipping, classifier unclipped
optim_wrapper = dict(
    type='AGCOptimWrapper',
    clip_grad=dict(type='agc', clip_factor=0.01, eps=1e-3, exclude=('head.fc',)),
)
default_hooks = dict(
    checkpoint=dict(save_best=['accuracy/top1', 'robust_accuracy/top1'], rule='greater')
)
randomness = dict(seed=0)
channels_last = True  # NHWC, as resnet18-w16_1xb64_digits.py
