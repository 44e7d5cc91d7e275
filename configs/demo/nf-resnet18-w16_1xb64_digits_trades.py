# TRADES (Zhang et al. 2019, beta 6) on the bundled digits: loss CE(clean) +
# beta * KL(p(clean) || p(adv)), the PGD-5 attack maximising that KL from
# TRADES's small Gaussian start; one concatenated pass (no BN),
# eps warm-up and schedule of nf-resnet18-w16_1xb64_digits_pgdat.py.
_base_ = ['./nf-resnet18-w16_1xb64_digits_pgdat.py']

model = dict(adv_loss='trades', trades_beta=6.0, adv_loss_weight=None)
data_preprocessor = dict(attack=dict(loss='kl', random_start='normal'))
