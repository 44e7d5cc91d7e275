# Pure adversarial training (loss CE(adv) only) of the small NF-ResNet on the
# bundled digits; eps warm-up and clipping as in the NoFrost demo config.
_base_ = ['./nf-resnet18-w16_1xb64_digits_pgdat.py']

data_preprocessor = dict(adv_loss_weight=1.0)
