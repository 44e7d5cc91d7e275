# Pure adversarial training (Madry et al. 2018) of the small BN ResNet on the
# bundled digits: loss CE(adv) only; no clean forward pass is run
# (acc_clean/loss_clean are not logged). Attack and schedule of BN-AT.
_base_ = ['./resnet18-w16_1xb64_digits_pgdat.py']

model = dict(adv_loss_weight=1.0)
