# FGSM-RS adversarial training ("Fast is better than free", Wong et al. 2020)
# of the small BN ResNet on the bundled digits: the BN-AT recipe of
# resnet18-w16_1xb64_digits_pgdat.py with one FGSM step of 1.25 eps from a
# uniform start in the eps-ball instead of PGD-5. Val split (seed 0): TO BE
# MEASURED.
_base_ = ['./resnet18-w16_1xb64_digits_pgdat.py']

data_preprocessor = dict(
    attack=dict(_delete_=True, type='FGSMRS', eps=32, step_ratio=1.25))
