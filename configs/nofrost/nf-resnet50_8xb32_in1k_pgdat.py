# NoFrost (Wang et al., ICML 2022): PGD adversarial training of NF-ResNet-50 on
# ImageNet with the official recipe. 8 GPUs x 32 images, 90 epochs, SGD nesterov
# lr 0.1 (batch 256), wd 5e-5, cosine, label smoothing 0.1, dropout 0.25, drop
# path 0.1; the attack and loss of _base_/adversarial/nofrost.py.
_base_ = [
    '../_base_/models/nf-resnet50.py',
    '../_base_/datasets/imagenet_bs32.py',
    '../_base_/schedules/imagenet_bs256_nofrost_90e.py',
    '../_base_/default_runtime.py',
    '../_base_/adversarial/nofrost.py',
]

model = _base_.adv_model
data_preprocessor = dict(_base_.adv_preprocessor, attack_model_mode='eval')
# keep the latest (with optimizer and scheduler), best clean and best robust
default_hooks = dict(checkpoint=dict(
    type='CheckpointHook', interval=1, max_keep_ckpts=1,
    save_best=['accuracy/top1', 'robust_accuracy/top1'], rule='greater'))
