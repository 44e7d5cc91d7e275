# digits_sgd_15e.py with one epoch of linear lr warm-up before the cosine
# decay (the adversarial-training demo configs: without it NF-AT's overfit
# test spiked to loss 59 at step 40, and BN-AT trained worse on val).
_base_ = ['./digits_sgd_15e.py']

param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1, convert_to_iter_based=True
    ),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=15, T_max=14),
]
