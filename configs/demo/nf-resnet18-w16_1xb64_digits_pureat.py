# Pure adversarial training (loss CE(adv) only) of the small NF-ResNet on the
# bundled digits; clipping and lr schedule as in the NoFrost demo config.
_base_ = ['./nf-resnet18-w16_1xb64_digits_pgdat.py']

model = dict(adv_loss_weight=1.0)
# without the clean term the NF net needs a slower eps warm-up (the NoFrost
# config's 5 epochs collapsed it: configs/demo/README.md)
custom_hooks = [dict(_base_.at_hook, eps_warmup=10)]
