# Standard (non-adversarial) training of a small BN ResNet on the bundled digits.
_base_ = [
    '../_base_/models/resnet18-w16_cifar.py',
    '../_base_/datasets/digits_bs64.py',
    '../_base_/schedules/digits_sgd_15e.py',
    '../_base_/default_runtime.py',
]
randomness = dict(seed=0)
# model, batches, attacks and test images in NHWC (oneDNN's convolutions;
# why it stays on: configs/demo/README.md)
channels_last = True
