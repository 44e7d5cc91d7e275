# The FGSM-RS reproduction (fast-at-cnn_1xb100_mnist_fgsmrs.py: Wong et al.'s
# net, attack and 10-epoch cyclic Adam schedule) with the eps warm-up of the
# CPU-sized PGD-40 AT: eps (and with it the 1.25 eps step) rises linearly
# from 0 over the first 3 epochs. Not a published recipe: it asks whether the
# reproduction's catastrophic overfitting, which struck two of three seeds,
# twice within the first 3 epochs, is avoided when the attack grows with the
# lr. Same guard, which only warns.
_base_ = ['./fast-at-cnn_1xb100_mnist_fgsmrs.py']

custom_hooks = [_base_.eps_warmup_hook, _base_.custom_hooks[1]]
