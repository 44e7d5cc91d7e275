# PGD-40 adversarial training on MNIST at eps 0.3, Madry et al.'s recipe
# (MadryLab/mnist_challenge config.json): his net, PGD-40 with step 0.01
# from a uniform start, loss CE(adv) only, batch 50, Adam 1e-4 for 100k
# iterations. Published (Croce & Hein 2020): 98.53% clean / 88.50%
# AutoAttack. ~24 min an epoch on 2 CPU cores (the estimate): a GPU
# recipe; fast-at-cnn_1xb100_mnist_pgdat.py is the CPU-sized one.
_base_ = [
    '../_base_/models/madry-cnn_mnist.py',
    '../_base_/datasets/mnist_bs100.py',
    '../_base_/schedules/mnist_adam_100k-iters.py',
    '../_base_/default_runtime.py',
    '../_base_/adversarial/mnist-eps0.3.py',
]

model = _base_.adv_model
data_preprocessor = dict(_base_.adv_preprocessor, attack=_base_.pgd40)
train_dataloader = dict(batch_size=50)
custom_hooks = [dict(_base_.at_hook, by_epoch=False, adv_val_interval=20_000)]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=10_000))
test_cfg = dict(type='RobustnessReportLoop')  # restarts of PGD-50
randomness = dict(seed=0)
