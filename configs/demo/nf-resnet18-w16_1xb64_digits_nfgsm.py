# N-FGSM adversarial training (de Jorge et al. 2022) on the bundled digits, the
# paper's recipe: loss CE(adv) only (no clean pass), noise U(-2 eps, 2 eps),
# one step of eps, no projection to the eps-ball; the model and schedule of
# nf-resnet18-w16_1xb64_digits_pgdat.py, with the catastrophic-overfitting
# guard of single-step training.
_base_ = ['./nf-resnet18-w16_1xb64_digits_pgdat.py', '../_base_/adversarial/co-guard.py']

model = dict(adv_loss_weight=1.0)
data_preprocessor = dict(attack=dict(_delete_=True, type='NFGSM', noise_ratio=2))
custom_hooks = [_base_.at_hook, _base_.co_guard]
