# N-FGSM adversarial training (de Jorge et al. 2022) of the small BN ResNet on
# the bundled digits: the BN-AT recipe of resnet18-w16_1xb64_digits_pgdat.py
# (eps 32/255, 0.5 CE(clean) + 0.5 CE(adv), lr and eps warm-up) with one
# noisy FGSM step instead of PGD-5: noise U(-2 eps, 2 eps), step eps, no
# projection to the eps-ball. Val split (seed 0): TO BE MEASURED.
_base_ = ['./resnet18-w16_1xb64_digits_pgdat.py']

data_preprocessor = dict(
    attack=dict(_delete_=True, type='NFGSM', eps=32, noise_ratio=2))
