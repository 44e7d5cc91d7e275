# FGSM-RS adversarial training of the small NF-ResNet on the bundled digits:
# the NoFrost recipe of nf-resnet18-w16_1xb64_digits_pgdat.py with one FGSM
# step of 1.25 eps from a uniform start instead of PGD-5. Val split (seed 0):
# TO BE MEASURED.
_base_ = ['./nf-resnet18-w16_1xb64_digits_pgdat.py']

data_preprocessor = dict(
    attack=dict(_delete_=True, type='FGSMRS', eps=32, step_ratio=1.25))
