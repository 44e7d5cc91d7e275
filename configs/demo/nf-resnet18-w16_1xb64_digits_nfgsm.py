# N-FGSM adversarial training of the small NF-ResNet on the bundled digits:
# the NoFrost recipe of nf-resnet18-w16_1xb64_digits_pgdat.py (AGC, unit last
# gains, concat pass) with one noisy FGSM step instead of PGD-5 (noise
# U(-2 eps, 2 eps), step eps, no projection). Val split (seed 0): TO BE
# MEASURED.
_base_ = ['./nf-resnet18-w16_1xb64_digits_pgdat.py']

data_preprocessor = dict(
    attack=dict(_delete_=True, type='NFGSM', eps=32, noise_ratio=2))
