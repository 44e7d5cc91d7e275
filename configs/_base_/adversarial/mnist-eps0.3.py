# The adversarial-training runtime of the MNIST reproductions at L-inf eps
# 0.3 (76.5 in pixel units of 255), with the literature's evaluation: PGD-50
# with step 0.01 and 10 restarts (fast_adversarial's evaluate_mnist.py; a
# sample counts as broken if any restart breaks it) and AutoAttack
# (standard). Leaves set model = _base_.adv_model (the pure adversarial
# loss of Madry and Wong et al.) and data_preprocessor = dict(
# _base_.adv_preprocessor, attack=...); every attack follows its eps.
adv_model = dict(type='AdvImageClassifier', adv_loss_weight=1.0, adv_forward='separate')
adv_preprocessor = dict(type='PGDDataPreprocessor', eps=76.5)
# Madry et al.'s training attack: PGD-40 with step 0.01 (uniform start)
pgd40 = dict(type='PGDAttack', steps=40, step_size=2.55)
at_hook = dict(
    type='AdversarialTrainingHook',
    # no eps warm-up: none of the reproduced recipes has one
    eps_warmup=0,
    adv_val_interval=5,
    # step 0.01 as the test attack; early exit: never weaker, cheaper
    val_attack=dict(type='PGDAttack', steps=20, step_size=2.55, early_exit=True),
)
custom_hooks = [at_hook]
# eps rises linearly from 0 over the first 3 epochs (updated every
# iteration), for the CPU-sized PGD-40 AT and the warmed-up FGSM-RS. At the
# full eps from the first step, with the 10-epoch cyclic Adam schedule, the
# PGD-40 AT net stayed at chance (loss 2.30, 10-13% accuracy, clean
# included) for 5 epochs
eps_warmup_hook = dict(at_hook, eps_warmup=3)

# `tools/test.py CONFIG CKPT` runs these; leaves set
# test_cfg = dict(type='RobustnessReportLoop') (restarts; test_cfg belongs to
# the dataset base). `--num-samples N` evaluates a fixed seeded subset,
# `--resume` continues a killed evaluation from its per-batch results
test_attacks = [
    dict(
        attack=dict(type='PGDAttack', steps=50, step_size=2.55, early_exit=True),
        name='PGD-50',
        restarts=10,
    ),
    dict(type='AutoAttack', version='standard', name='AutoAttack'),
]
