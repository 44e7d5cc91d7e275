# NoFrost on CIFAR-10: PGD-10 adversarial training (eps 8/255) of the CIFAR
# NF-ResNet-18, loss 0.5 * clean + 0.5 * adversarial, one GPU x 128 images.
_base_ = [
    '../_base_/models/nf-resnet18_cifar.py',
    '../_base_/datasets/cifar10_bs128_nofrost.py',
    '../_base_/schedules/cifar10_bs128_nofrost_100e.py',
    '../_base_/default_runtime.py',
]

model = dict(type='AdvImageClassifier')

custom_hooks = [
    dict(
        type='AdversarialTrainingHook',
        adv_val_interval=10,
        adv_val_last=0.1,
        val_attack=dict(type='PGDAttack', eps=8, steps=5)),
]

default_hooks = dict(
    checkpoint=dict(
        type='CheckpointHook',
        interval=1,
        max_keep_ckpts=1,
        save_best=['accuracy/top1', 'robust_accuracy/top1'],
        rule='greater'))
