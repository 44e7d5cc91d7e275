# FGSM-RS adversarial training ("Fast is better than free", Wong et al. 2020)
# on the bundled digits, the paper's recipe: loss CE(adv) only, one FGSM step
# of 1.25 eps from a uniform start in the eps-ball, projected; the model and
# schedule of resnet18-w16_1xb64_digits_pgdat.py, with the
# catastrophic-overfitting guard of single-step training.
_base_ = ['./resnet18-w16_1xb64_digits_pgdat.py', '../_base_/adversarial/co-guard.py']

model = dict(adv_loss_weight=1.0)
data_preprocessor = dict(attack=dict(_delete_=True, type='FGSMRS', step_ratio=1.25))
custom_hooks = [_base_.at_hook, _base_.co_guard]
