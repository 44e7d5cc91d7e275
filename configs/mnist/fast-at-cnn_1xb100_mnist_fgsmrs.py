# FGSM-RS adversarial training on MNIST at eps 0.3, the recipe of "Fast is
# better than free" (Wong et al. 2020, locuslab/fast_adversarial
# MNIST/train_mnist.py): its net, a uniform start in the eps-ball taken
# unclipped (its MNIST FGSM branch does not clip the start to [0, 1]; with a
# clipped start seed 0 overfitted catastrophically: 0.09% PGD-50x10), one
# FGSM step of 0.375 (1.25 eps) projected to the ball, loss CE(adv) only, batch
# 100, 10 epochs of Adam with the cyclic lr 0 -> 5e-3 -> 0. Published (Croce
# & Hein 2020, full test set): 98.50% clean / 82.93% AutoAttack.
_base_ = [
    '../_base_/models/fast-at-cnn_mnist.py',
    '../_base_/datasets/mnist_bs100_at-eps0.3.py',
    '../_base_/schedules/mnist_adam_cyclic_10e.py',
    '../_base_/default_runtime.py',
]

model = dict(type='AdvImageClassifier')
data_preprocessor = dict(
    attack=dict(type='FGSMRS', eps=76.5, step_ratio=1.25, clip_start=False))
custom_hooks = [
    dict(
        type='AdversarialTrainingHook',
        adv_val_interval=5,
        val_attack=dict(type='PGDAttack', eps=76.5, steps=20, step_size=2.55,
                        early_exit=True)),
    # catastrophic-overfitting guard: PGD-5 and FGSM accuracy on 200 fixed
    # val images every epoch; a warning with the numbers and
    # work_dir/co_guard_last_good.pth on a collapse (training goes on: the
    # recipe's own result is what is reproduced)
    dict(type='CatastrophicOverfittingHook', interval=1, num_samples=200,
         pgd_steps=5, action='warn'),
]
randomness = dict(seed=0)
