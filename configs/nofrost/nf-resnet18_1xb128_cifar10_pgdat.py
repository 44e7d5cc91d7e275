# NoFrost on CIFAR-10: PGD-10 adversarial training (eps 8/255) of the CIFAR
# NF-ResNet-18, loss 0.5 * clean + 0.5 * adversarial in two passes (as the
# official code), one GPU x 128 images.
_base_ = [
    '../_base_/models/nf-resnet18_cifar.py',
    '../_base_/datasets/cifar10_bs128.py',
    '../_base_/schedules/cifar10_bs128_nofrost_100e.py',
    '../_base_/default_runtime.py',
    '../_base_/adversarial/nofrost.py',
]

model = _base_.adv_model
data_preprocessor = _base_.adv_preprocessor
# keep the latest (with optimizer and scheduler), best clean and best robust
default_hooks = dict(
    checkpoint=dict(
        type='CheckpointHook',
        interval=1,
        max_keep_ckpts=1,
        save_best=['accuracy/top1', 'robust_accuracy/top1'],
        rule='greater',
    )
)
