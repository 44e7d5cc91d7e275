# CIFAR-10 for PGD adversarial training: eps 8/255, 10 steps on each training
# batch, 0.5 * CE(clean) + 0.5 * CE(adv). The CIFAR10 dataset of mmpretrain
# downloads the data into data/cifar10 when its md5 sums do not match.
dataset_type = 'CIFAR10'
data_preprocessor = dict(
    type='PGDDataPreprocessor',
    num_classes=10,
    # RGB format normalization parameters
    mean=[125.307, 122.961, 113.8575],
    std=[51.5865, 50.847, 51.255],
    # loaded images are already RGB format
    to_rgb=False,
    attack=dict(type='PGDAttack', eps=8, steps=10),
    adv_loss_weight=0.5,
    adv_forward='separate',
)

train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]

test_pipeline = [
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=128,
    num_workers=2,
    dataset=dict(
        type=dataset_type,
        data_root='data/cifar10',
        split='train',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)

val_dataloader = dict(
    batch_size=128,
    num_workers=2,
    dataset=dict(
        type=dataset_type,
        data_root='data/cifar10/',
        split='test',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, ))

test_dataloader = val_dataloader
test_evaluator = val_evaluator

# `tools/test.py` reports clean accuracy, PGD-20 and AutoAttack (the headline
# number, as RobustBench); `--attacks none` evaluates clean accuracy only.
# PGD-20 with early exit: a sample is broken by the first iterate that
# misclassifies it and leaves the batch (cheaper, never weaker than the
# last iterate). `tools/test.py ... --cascade` runs AutoAttack only on
# PGD-20's survivors: the worst case over both, far cheaper on large sets.
test_attacks = [
    dict(type='PGDAttack', eps=8, steps=20, early_exit=True, name='PGD-20'),
    dict(type='AutoAttack', eps=8, version='standard', name='AutoAttack'),
]
