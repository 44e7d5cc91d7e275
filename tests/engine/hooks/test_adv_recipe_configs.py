"""Pure AT, TRADES and AWP through the hook and tools/train.py (demo configs, DDP)."""

import re
from types import SimpleNamespace

import pytest
import torch

from nofrost_mm.engine.hooks import AdversarialTrainingHook
from tests.attacks.toy import build_classifier
from tests.conftest import REPO_ROOT, free_port, run_tool
from tests.tools.user_path_runs import run_main

TINY = [
    'train_dataloader.dataset.indices=128',
    'train_cfg.max_epochs=1',
    'train_dataloader.batch_size=64',
    'val_dataloader.dataset.indices=40',
    'data_preprocessor.attack.steps=2',
    'custom_hooks.0.val_attack.steps=2',
    'default_hooks.logger.interval=1',
]
PRE = dict(
    type='PGDDataPreprocessor',
    mean=[0.0] * 3,
    std=[255.0] * 3,
    eps=16,
    attack=dict(type='PGDAttack', steps=2),
)


def test_awp_warmup_follows_the_runner_epoch():
    model = build_classifier(data_preprocessor=PRE)
    model.awp_gamma = 0.01
    hook = AdversarialTrainingHook(awp_warmup=2)
    runner = SimpleNamespace(model=model, iter=0, epoch=0, train_dataloader=[None] * 4)
    hook.before_run(runner)
    seen = []
    for it in range(16):
        runner.iter, runner.epoch = it, it // 4
        hook.before_train_iter(runner, it % 4)
        seen.append(model.awp_enabled)
    assert seen == [False] * 8 + [True] * 8


def test_awp_settings_are_checked():
    with pytest.raises(ValueError, match='awp_warmup'):
        AdversarialTrainingHook(awp_warmup=-1)
    runner = SimpleNamespace(model=build_classifier(data_preprocessor=PRE))
    with pytest.raises(ValueError, match='model.awp_gamma > 0'):
        AdversarialTrainingHook(awp_warmup=1).before_run(runner)
    runner.model = build_classifier(data_preprocessor=PRE, adv_loss_weight=0)
    runner.model.awp_gamma = 0.01
    with pytest.raises(ValueError, match='adv_loss_weight=0'):
        AdversarialTrainingHook().before_run(runner)


RUNS = {
    # config: (extra options, keys the log must show, keys it must not show)
    'resnet18-w16_1xb64_digits_pureat.py': ([], ['loss_adv', 'acc_adv'], ['loss_clean']),
    'nf-resnet18-w16_1xb64_digits_pureat.py': (
        ['model.awp_gamma=0.01'],
        ['loss_adv', 'acc_adv', 'awp_gamma'],
        ['loss_clean'],
    ),
    'resnet18-w16_1xb64_digits_trades.py': (
        [],
        ['loss_ce', 'loss_kl', 'trades_kl', 'loss_clean', 'acc_adv'],
        ['awp_gamma'],
    ),
    'nf-resnet18-w16_1xb64_digits_trades.py': (
        ['model.awp_gamma=0.005'],
        ['loss_ce', 'loss_kl', 'trades_kl', 'awp_gamma'],
        [],
    ),
}


@pytest.mark.parametrize('config', sorted(RUNS))
def test_demo_recipe_trains(config, tmp_path, monkeypatch):
    options, present, absent = RUNS[config]
    # tools/train.py's main in this process (a process would spend most of
    # the test importing torch); the log file holds what the console shows
    run_main(
        monkeypatch,
        'tools/train.py',
        [f'configs/demo/{config}', '--work-dir', tmp_path, '--cfg-options', *TINY, *options],
    )
    (log,) = tmp_path.glob('*/*.log')
    log = log.read_text()
    assert 'Epoch(train) [1][2/2]' in log
    for key in present + ['adv_eps', 'attack_time_share']:
        assert re.search(rf'\b{key}: \d', log), key
    for key in absent:
        assert not re.search(rf'\b{key}: ', log), key
    assert re.search(r'robust_accuracy/top1: \d', log)
    assert list(tmp_path.glob('epoch_1.pth'))


def test_two_process_cpu_ddp_trades_awp_keeps_ranks_in_sync(tmp_path):
    """Each rank perturbs with its own batch; the outer gradients are still
    all-reduced, so both ranks end with the same weights."""
    config = tmp_path / 'dist_config.py'
    config.write_text(
        f"_base_ = '{REPO_ROOT / 'configs/demo/resnet18-w16_1xb64_digits_trades.py'}'\n"
        "custom_imports = dict(imports=['nofrost_mm', "
        "'tests.engine.runner.dump_rank_weights'], allow_failed_imports=False)\n"
        "model = dict(awp_gamma=0.005)\n"
        "custom_hooks = [dict(type='AdversarialTrainingHook', adv_val_interval=0), "
        "dict(type='DumpRankWeightsHook')]\n"
        "default_hooks = dict(checkpoint=dict(save_best=None))\n"
    )
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
        env={'PORT': str(free_port())},
    )
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log
    assert re.search(r'awp_gamma: 0\.0050', log) and re.search(r'loss_kl: \d', log)
    rank0 = torch.load(work_dir / 'rank0_weights.pth')
    rank1 = torch.load(work_dir / 'rank1_weights.pth')
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
