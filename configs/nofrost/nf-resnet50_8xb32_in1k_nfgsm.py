# NoFrost with single-step N-FGSM adversarial training (de Jorge et al. 2022):
# the recipe of nf-resnet50_8xb32_in1k_pgdat.py (same model, data, loss
# 0.5 * clean + 0.5 * adversarial, schedule and robust validation) with one
# noisy FGSM step instead of PGD-10: noise U(-2 eps, 2 eps), step eps, no
# projection to the eps-ball (eps 8/255). About 8/3 standard iterations per
# iteration instead of 26/3 (benchmarks/README.md). Not trained here: no
# published N-FGSM result exists for normalizer-free ImageNet models, and
# catastrophic overfitting is not ruled out without BN, hence the guard.
_base_ = ['./nf-resnet50_8xb32_in1k_pgdat.py']

data_preprocessor = dict(attack=dict(_delete_=True, type='NFGSM', noise_ratio=2))
custom_hooks = [
    _base_.at_hook,
    # PGD-10 and FGSM accuracy on 500 fixed val images after every epoch;
    # warns with the numbers and the last good checkpoint on a collapse
    dict(type='CatastrophicOverfittingHook', interval=1, num_samples=500, action='warn'),
]
