# Pure adversarial training (Madry et al. 2018) of the small BN ResNet on the
# bundled digits: loss CE(adv) only, adv_loss_weight=1. No clean forward pass
# is run (acc_clean/loss_clean are not logged); the attack is the BN-AT one.
_base_ = ['./resnet18-w16_1xb64_digits_pgdat.py']

data_preprocessor = dict(adv_loss_weight=1.0)
