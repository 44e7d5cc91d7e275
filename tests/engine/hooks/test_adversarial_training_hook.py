"""AdversarialTrainingHook: schedules, start-up checks, CPU training (BN, NF, 2-process DDP)."""

import re
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from nofrost_mm.engine.hooks import AdversarialTrainingHook
from tests.attacks.toy import build_classifier
from tests.conftest import REPO_ROOT, free_port, run_tool
from tests.engine.hooks.stock_lenet5 import stock_lenet5_classifier
from tests.tools.user_path_runs import run_main

BN_AT = 'configs/demo/resnet18-w16_1xb64_digits_pgdat.py'
NF_AT = 'configs/demo/nf-resnet18-w16_1xb64_digits_pgdat.py'
STANDARD = 'configs/demo/resnet18-w16_1xb64_digits.py'
TINY = [
    'train_cfg.max_epochs=1',
    'train_dataloader.dataset.indices=64',
    'train_dataloader.batch_size=32',
    'val_dataloader.dataset.indices=40',
    'data_preprocessor.attack.steps=2',
    'custom_hooks.0.val_attack.steps=2',
    'default_hooks.logger.interval=1',
]


def _fake_runner(model, iters_per_epoch=4):
    return SimpleNamespace(model=model, iter=0, epoch=0, train_dataloader=[None] * iters_per_epoch)


def _at_model():
    return build_classifier(
        data_preprocessor=dict(
            type='PGDDataPreprocessor',
            mean=[0.0] * 3,
            std=[255.0] * 3,
            eps=16,
            attack=dict(type='PGDAttack', steps=10),
        )
    )


def test_eps_warmup_and_steps_curriculum_follow_the_runner():
    model = _at_model()
    hook = AdversarialTrainingHook(eps_warmup=2, steps_schedule=[3, 5, 7], steps_milestones=[1, 3])
    runner = _fake_runner(model)
    hook.before_run(runner)
    pre = model.data_preprocessor
    seen = []
    for it in range(16):  # 4 epochs of 4 iterations
        runner.iter, runner.epoch = it, it // 4
        hook.before_train_iter(runner, it % 4)
        seen.append((pre.eps, pre.attack.steps))
    assert [eps for eps, _ in seen[:8]] == pytest.approx([16 * (i + 1) / 8 for i in range(8)])
    assert all(eps == 16 for eps, _ in seen[8:])
    assert [steps for _, steps in seen] == [3] * 4 + [5] * 8 + [7] * 4
    # robust validation defaults to the configured training eps with 5 steps
    assert hook.val_attack.eps == 16 and hook.val_attack.steps == 5
    assert hook.val_attack is not pre.attack and pre.train_eps == 16


def test_val_attack_is_built_at_the_training_eps_and_never_rescheduled():
    model = _at_model()
    hook = AdversarialTrainingHook(eps_warmup=4)
    runner = _fake_runner(model)
    hook.before_run(runner)
    hook.before_train_iter(runner, 0)  # warm-up: the training attack at 16 / 16
    assert model.data_preprocessor.eps == pytest.approx(1.0)
    assert hook.val_attack.eps == 16  # the configured eps, not the warm-up's
    given = AdversarialTrainingHook(val_attack=dict(type='PGDAttack', eps=4, steps=2))
    given.before_run(runner)
    assert given.val_attack.eps == 4


def test_a_plain_classifier_is_told_to_use_adv_image_classifier():
    model = build_classifier(
        type='ImageClassifier',
        data_preprocessor=dict(type='PGDDataPreprocessor', mean=[0.0] * 3, std=[255.0] * 3, eps=16),
    )
    with pytest.raises(
        TypeError,
        match="model.type='AdvImageClassifier'.*owns the "
        'adversarial batch and loss.*ImageClassifier',
    ):
        AdversarialTrainingHook().before_run(_fake_runner(model))


def test_val_attack_without_eps_needs_a_training_eps():
    model = build_classifier(
        data_preprocessor=dict(
            type='PGDDataPreprocessor',
            mean=[0.0] * 3,
            std=[255.0] * 3,
            attack=dict(type='CW', steps=2),
        )
    )
    with pytest.raises(TypeError, match='val_attack names no eps.*CW.*set val_attack.eps'):
        AdversarialTrainingHook().before_run(_fake_runner(model))
    # its eps attribute is None: nothing to warm up, said before the run
    with pytest.raises(TypeError, match='schedules `eps`, which the training attack CW'):
        AdversarialTrainingHook(eps_warmup=2).before_run(_fake_runner(model))


def test_iteration_based_schedules():
    model = _at_model()
    hook = AdversarialTrainingHook(
        eps_warmup=10, steps_schedule=[1, 4], steps_milestones=[5], by_epoch=False
    )
    runner = _fake_runner(model)
    hook.before_run(runner)
    runner.iter = 4
    hook.before_train_iter(runner, 0)
    assert model.data_preprocessor.eps == pytest.approx(8)
    assert model.data_preprocessor.attack.steps == 1
    runner.iter = 5
    hook.before_train_iter(runner, 0)
    assert model.data_preprocessor.attack.steps == 4


@pytest.mark.parametrize(
    'kwargs,error,message',
    [
        (
            dict(eps_warmup=-1),
            ValueError,
            r'AdversarialTrainingHook.eps_warmup=-1 is out of range; allowed: \[0, inf\)',
        ),
        (
            dict(eps_warmup=1.5),
            TypeError,
            r'AdversarialTrainingHook.eps_warmup must be an int, got 1.5',
        ),
        (dict(steps_schedule=[3, 5]), ValueError, 'steps_milestones needs one entry fewer'),
        (dict(steps_schedule=[]), ValueError, 'steps_schedule must be a non-empty list'),
        (
            dict(steps_schedule=[3, 0], steps_milestones=[2]),
            ValueError,
            r'AdversarialTrainingHook.steps_schedule\[1\]=0 is out of range; allowed: \[1',
        ),
        (
            dict(steps_schedule=[3, 5, 7], steps_milestones=[4, 2]),
            ValueError,
            r'steps_milestones must be increasing, got \[4, 2\]',
        ),
        (
            dict(steps_schedule=[3, 5], steps_milestones=['2']),
            TypeError,
            r'AdversarialTrainingHook.steps_milestones\[0\] must be an int',
        ),
        (dict(steps_milestones=[2]), ValueError, 'steps_milestones needs steps_schedule'),
        (dict(adv_val_interval=-1), ValueError, 'AdversarialTrainingHook.adv_val_interval=-1'),
        (
            dict(adv_val_last=2),
            ValueError,
            r'AdversarialTrainingHook.adv_val_last=2 is out of range; allowed: \[0, 1\]',
        ),
        (dict(awp_warmup=True), TypeError, 'AdversarialTrainingHook.awp_warmup must be an int'),
        (
            dict(by_epoch='yes'),
            TypeError,
            "AdversarialTrainingHook.by_epoch must be True or False, got 'yes'",
        ),
        (dict(val_attack=dict(type='PGDAttack', norm='L3')), ValueError, 'val_attack'),
    ],
)
def test_bad_hook_settings_name_the_key(kwargs, error, message):
    with pytest.raises(error, match=message):
        AdversarialTrainingHook(**kwargs)


def _runner(config, tmp_path, **options):
    cfg = Config.fromfile(REPO_ROOT / config)
    cfg.merge_from_dict(dict(work_dir=str(tmp_path), **options))
    return Runner.from_cfg(cfg)


def test_hook_without_attacking_preprocessor_fails_at_start(tmp_path):
    runner = _runner(STANDARD, tmp_path, custom_hooks=[dict(type='AdversarialTrainingHook')])
    with pytest.raises(TypeError, match="type='PGDDataPreprocessor'"):
        runner.train()
    assert runner.iter == 0


def test_attacking_without_the_hook_says_what_to_add(tmp_path):
    """NoFrostRunner (every shipped config's runner) checks before any batch."""
    cfg = Config.fromfile(REPO_ROOT / BN_AT)
    cfg.merge_from_dict(dict(work_dir=str(tmp_path), custom_hooks=[]))
    runner = RUNNERS.build(cfg)
    with pytest.raises(ValueError, match="dict\\(type='AdversarialTrainingHook'\\)"):
        runner.train()
    assert runner.iter == 0


def test_bad_values_fail_when_the_runner_is_built(tmp_path):
    cfg = Config.fromfile(REPO_ROOT / BN_AT)
    cfg.work_dir = str(tmp_path)
    cfg.model.adv_loss_weight = 1.5
    with pytest.raises(ValueError, match='model.adv_loss_weight'):
        Runner.from_cfg(cfg)


def _check_log(log):
    for key in (
        'loss_clean',
        'loss_adv',
        'acc_clean',
        'acc_adv',
        'adv_eps',
        'adv_steps',
        'attack_time_share',
    ):
        assert re.search(rf'{key}: \d', log), key
    assert re.search(r'robust_accuracy/top1: \d', log)
    assert re.search(r'accuracy/top1: \d', log)


def test_tiny_nf_training_logs_adversarial_metrics(tmp_path, monkeypatch):
    """NoFrost on CPU; the BN config is trained by the DDP test below.

    tools/train.py's main in this process (a process would spend most of the
    test importing torch); the log file holds what the console shows."""
    run_main(monkeypatch, 'tools/train.py', [NF_AT, '--work-dir', tmp_path, '--cfg-options', *TINY])
    (log,) = tmp_path.glob('*/*.log')
    _check_log(log.read_text())
    assert list(tmp_path.glob('best_robust_accuracy_top1_epoch_1.pth'))
    assert list(tmp_path.glob('best_accuracy_top1_epoch_1.pth'))


def test_two_process_cpu_ddp_bn_adversarial_training(tmp_path):
    config = tmp_path / 'dist_config.py'
    config.write_text(
        f"_base_ = '{REPO_ROOT / BN_AT}'\n"
        "custom_imports = dict(imports=['nofrost_mm', "
        "'tests.engine.runner.dump_rank_weights'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='AdversarialTrainingHook', adv_val_interval=1, "
        "val_attack=dict(type='PGDAttack', eps=32, steps=2)), "
        "dict(type='DumpRankWeightsHook')]\n"
    )
    port = free_port()
    work_dir = tmp_path / 'dist'
    proc = run_tool(
        [
            'tools/dist_train.sh',
            config,
            '2',
            '--work-dir',
            work_dir,
            '--cfg-options',
            *[o for o in TINY if 'custom_hooks' not in o],
        ],
        env={'PORT': str(port)},
    )
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log
    _check_log(log)
    # 64 samples / (2 ranks x 32) = 1 iteration on each rank
    assert 'Epoch(train) [1][1/1]' in log
    rank0 = torch.load(work_dir / 'rank0_weights.pth')
    rank1 = torch.load(work_dir / 'rank1_weights.pth')
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key


def test_robust_validation_of_one_surviving_sample_on_stock_lenet5():
    """mmpretrain's LeNet5 squeezes the logits of one image to 1-d (its head's
    softmax then fails): a val batch whose clean pass got one sample right is
    still predicted whole, so robust validation of the README's stock MNIST
    config does not crash (it did on a rank with one right sample)."""
    from mmpretrain.structures import DataSample

    model = stock_lenet5_classifier()
    torch.manual_seed(0)
    batch = dict(
        inputs=[torch.randint(0, 256, (1, 32, 32), dtype=torch.uint8) for _ in range(4)],
        data_samples=[DataSample().set_gt_label(label) for label in range(4)],
    )
    with torch.no_grad():
        outputs = model.val_step(batch)
    # exactly one clean-right sample: sample 2
    for i, out in enumerate(outputs):
        out.set_pred_label(2 if i == 2 else (int(out.gt_label) + 1) % 10)
    clean = [int(o.pred_label) for o in outputs]

    class Collect:
        def process(self, data_samples, data_batch=None):
            self.samples = data_samples

    hook = AdversarialTrainingHook(val_attack=dict(type='PGDAttack', steps=2))
    hook._robust_evaluator = collect = Collect()
    hook.after_val_iter(SimpleNamespace(model=model), 0, batch, outputs)
    robust = [int(s.pred_label) for s in collect.samples]
    assert robust[:2] + robust[3:] == clean[:2] + clean[3:]  # wrong ones stay wrong
    assert 0 <= robust[2] < 10
    assert [int(o.pred_label) for o in outputs] == clean  # the clean outputs untouched
