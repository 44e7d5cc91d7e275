# BN-AT on the bundled digits: PGD-5 adversarial training (eps 32/255, loss
# 0.5 CE(clean) + 0.5 CE(adv), clean and adversarial in two passes) of the
# small BN ResNet of resnet18-w16_1xb64_digits.py. Recipe chosen on the val
# split (see the bases) at 32 px: 97.6% clean / 74.3% PGD-20 at 15 epochs;
# on the 16 px digits (now the default) 98.3% / 76.7% (seed 0, 2026-12-01).
_base_ = [
    '../_base_/models/resnet18-w16_cifar.py',
    '../_base_/datasets/digits_bs64_pgdat.py',
    '../_base_/schedules/digits_sgd_15e_warmup.py',
    '../_base_/default_runtime.py',
]

model = dict(type='AdvImageClassifier')
default_hooks = dict(
    checkpoint=dict(
        save_best=['accuracy/top1', 'robust_accuracy/top1'], rule='greater'))
randomness = dict(seed=0)
# model, training batches, attacks and test images in NHWC: oneDNN's convs
# made a whole AT iteration 1.14-1.25x faster on the 2-core CPU
# (benchmarks/at_overhead.py, 2026-12-01, 32 px)
# (at 16 px, 2026-12-02, PGD-5 at eps 32: 1.11x with 1 thread)
channels_last = True
