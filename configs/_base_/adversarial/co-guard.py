# The catastrophic-overfitting guard of single-step adversarial training
# (FGSM-RS, N-FGSM): PGD-5 and FGSM accuracy on 64 fixed val images every 3
# epochs at the training eps; a warning with the numbers and
# work_dir/co_guard_last_good.pth on a collapse. PGD-5 is fast adversarial
# training's own early-stop probe. Leaves add it after the training hook:
# custom_hooks = [_base_.at_hook, _base_.co_guard].
co_guard = dict(
    type='CatastrophicOverfittingHook', interval=3, num_samples=64, pgd_steps=5, action='warn'
)
