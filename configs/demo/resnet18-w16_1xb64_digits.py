# Standard (non-adversarial) training of a small BN ResNet on the bundled digits.
_base_ = [
    '../_base_/models/resnet18-w16_cifar.py',
    '../_base_/datasets/digits_bs64.py',
    '../_base_/schedules/digits_sgd_15e.py',
    '../_base_/default_runtime.py',
]
randomness = dict(seed=0)
# model, training batches, attacks and test images in NHWC: oneDNN's convs
# made a whole AT iteration 1.14-1.25x faster on the 2-core CPU
# (benchmarks/at_overhead.py, 2026-12-01, 32 px)
# (at 16 px, 2026-12-02, PGD-5 at eps 32: 1.11x with 1 thread)
channels_last = True
