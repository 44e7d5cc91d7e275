# TRADES (Zhang et al. 2019, beta 6) with the small NF-ResNet on the bundled
# digits; one concatenated pass, eps warm-up and clipping as in the NoFrost
# demo config.
_base_ = ['./nf-resnet18-w16_1xb64_digits_pgdat.py']

data_preprocessor = dict(
    adv_loss='trades',
    trades_beta=6.0,
    adv_loss_weight=None,  # TRADES has no mixing weight
    attack=dict(loss='kl', random_start='normal'))
