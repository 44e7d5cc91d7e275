# PGD-40 adversarial training on MNIST at eps 0.3, Madry et al.'s recipe
# (MadryLab/mnist_challenge config.json): his net, PGD-40 with step 0.01
# from a uniform start, loss CE(adv) only, batch 50, Adam 1e-4 for 100k
# iterations. Published (Croce & Hein 2020): 98.53% clean / 88.50%
# AutoAttack. ~24 min an epoch on 2 CPU cores (the estimate): a GPU
# recipe; fast-at-cnn_1xb100_mnist_pgdat.py is the CPU-sized one.
_base_ = [
    '../_base_/models/madry-cnn_mnist.py',
    '../_base_/datasets/mnist_bs100_at-eps0.3.py',
    '../_base_/schedules/mnist_adam_100k-iters.py',
    '../_base_/default_runtime.py',
]

model = dict(type='AdvImageClassifier')
data_preprocessor = dict(
    attack=dict(type='PGDAttack', eps=76.5, steps=40, step_size=2.55))
train_dataloader = dict(batch_size=50)
custom_hooks = [
    dict(
        type='AdversarialTrainingHook',
        by_epoch=False,
        adv_val_interval=20_000,
        val_attack=dict(type='PGDAttack', eps=76.5, steps=20, step_size=2.55,
                        early_exit=True)),
]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=10_000))
randomness = dict(seed=0)
