# NoFrost (Wang et al., ICML 2022): PGD adversarial training of NF-ResNet-50 on
# ImageNet with the official recipe. 8 GPUs x 32 images, 90 epochs, SGD nesterov
# lr 0.1 (batch 256), wd 5e-5, cosine, label smoothing 0.1, dropout 0.25, drop
# path 0.1; PGD-10 at eps 8/255, loss 0.5 * clean + 0.5 * adversarial.
_base_ = [
    '../_base_/models/nf-resnet50.py',
    '../_base_/datasets/imagenet_bs32_nofrost.py',
    '../_base_/schedules/imagenet_bs256_nofrost_90e.py',
    '../_base_/default_runtime.py',
]

# clean and adversarial batches in two forward passes, as the official code
model = dict(type='AdvImageClassifier')

custom_hooks = [
    # robust accuracy under PGD-5 (eps 8/255) every 10 epochs and in the
    # last 10% of epochs, beside the clean accuracy of every epoch
    dict(
        type='AdversarialTrainingHook',
        adv_val_interval=10,
        adv_val_last=0.1,
        val_attack=dict(type='PGDAttack', eps=8, steps=5)),
]

# keep the latest (with optimizer and scheduler), best clean and best robust
default_hooks = dict(
    checkpoint=dict(
        type='CheckpointHook',
        interval=1,
        max_keep_ckpts=1,
        save_best=['accuracy/top1', 'robust_accuracy/top1'],
        rule='greater'))
