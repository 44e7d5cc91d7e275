# PGD-40 adversarial training on MNIST at eps 0.3, CPU-sized: Madry et al.'s
# attack (PGD-40, step 0.01, uniform start, loss CE(adv) only) on Wong et
# al.'s smaller net with the 10-epoch cyclic Adam schedule of the FGSM-RS
# reproduction, and a linear eps warm-up over its first 3 epochs (without
# it the net stayed at chance). It shortens Madry's recipe
# (madry-cnn_1xb50_mnist_pgdat.py: his net, batch 50, 100k iterations = 83
# epochs, flat Adam 1e-4) to a net of 1/20 of the parameters (0.17M instead
# of 3.3M) and an eighth of the epochs: ~2.3 min an epoch on one thread of
# this project's 2-core CPU (2026-12-04, AMD EPYC Zen 4, beside another
# 1-thread job) instead of ~24 min with 2 threads.
_base_ = ['./fast-at-cnn_1xb100_mnist_fgsmrs.py']

data_preprocessor = dict(attack=dict(_base_.pgd40, _delete_=True))
custom_hooks = [_base_.eps_warmup_hook]
