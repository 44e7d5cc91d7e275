# TRADES (Zhang et al. 2019) on the bundled digits with the small BN ResNet:
# loss CE(clean) + beta * KL(p(clean) || p(adv)), beta 6; the PGD-5 attack
# maximises that KL from TRADES's small Gaussian start. Clean and adversarial
# batches still go through two forward passes (BN).
_base_ = ['./resnet18-w16_1xb64_digits_pgdat.py']

data_preprocessor = dict(
    adv_loss='trades',
    trades_beta=6.0,
    adv_loss_weight=None,  # TRADES has no mixing weight
    attack=dict(loss='kl', random_start='normal'))
