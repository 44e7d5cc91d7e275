# MNIST for adversarial training at L-inf eps 0.3 (76.5 in pixel units of
# 255), with the literature's evaluation: PGD-50 with step 0.01 and 10
# restarts (fast_adversarial's evaluate_mnist.py; a sample counts as broken
# if any restart breaks it) and AutoAttack (standard). Leaves set the
# training attack (`data_preprocessor.attack`, eps written there) and pair
# this with model.type='AdvImageClassifier'.
_base_ = ['./mnist_bs100.py']

data_preprocessor = dict(
    type='PGDDataPreprocessor',
    # pure adversarial loss (Madry, Wong et al.); TRADES leaves change it
    adv_loss_weight=1.0,
    adv_forward='separate')

custom_hooks = [
    dict(
        type='AdversarialTrainingHook',
        # no eps warm-up: none of the reproduced recipes has one
        eps_warmup=0,
        adv_val_interval=5,
        # step 0.01 as the test attack; early exit: never weaker, cheaper
        val_attack=dict(type='PGDAttack', eps=76.5, steps=20, step_size=2.55,
                        early_exit=True)),
]

# `tools/test.py CONFIG CKPT` runs these (RobustnessReportLoop: restarts);
# `--num-samples N` evaluates a fixed seeded subset, `--resume` continues a
# killed evaluation from its per-batch results
test_cfg = dict(type='RobustnessReportLoop')
test_attacks = [
    dict(attack=dict(type='PGDAttack', eps=76.5, steps=50, step_size=2.55,
                     early_exit=True),
         name='PGD-50', restarts=10),
    dict(type='AutoAttack', eps=76.5, version='standard', name='AutoAttack'),
]
