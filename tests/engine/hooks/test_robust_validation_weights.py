"""Robust validation measures the weights the clean validation measures (EMA, save_best, resume)."""

import json

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from nofrost_mm.attacks import PGDAttack
from tests.conftest import REPO_ROOT

BN_AT = REPO_ROOT / 'configs/demo/resnet18-w16_1xb64_digits_pgdat.py'
VAL_ATTACK = dict(type='PGDAttack', eps=4, steps=3, random_start=False)


def _cfg(work_dir, priority, max_epochs):
    cfg = Config.fromfile(BN_AT)
    cfg.work_dir = str(work_dir)
    cfg.train_cfg.max_epochs = max_epochs
    cfg.train_cfg.val_interval = 1
    # enough steps at a small eps and constant lr for the training weights
    # to become robust where the EMA ones (kept at init) are not: the old
    # hook (robust validation after EMAHook swapped back) then logged
    # robust 10.0% above clean 5.0%
    cfg.train_dataloader.dataset.indices = 192
    cfg.param_scheduler = None
    cfg.train_dataloader.batch_size = 32
    cfg.val_dataloader.dataset.indices = 40
    cfg.data_preprocessor.attack.steps = 2
    cfg.data_preprocessor.eps = 4
    cfg.custom_hooks = [
        dict(type='AdversarialTrainingHook', adv_val_interval=1, val_attack=VAL_ATTACK),
        # EMA weights that stay at their initialisation: far from the
        # training weights, so measuring the wrong ones shows
        dict(type='EMAHook', momentum=1e-9, priority=priority),
    ]
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=1, save_best='robust_accuracy/top1', rule='greater'
    )
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    return cfg


def _logged(work_dir):
    rows = {}
    for path in work_dir.glob('*/vis_data/scalars.json'):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if 'robust_accuracy/top1' in rec:
                rows[rec['step']] = (rec['accuracy/top1'], rec['robust_accuracy/top1'])
    return rows


def _direct(runner, checkpoint):
    """Clean and robust val accuracy of the checkpoint's weights, computed here."""
    model = runner.model
    model.load_state_dict(torch.load(checkpoint, weights_only=True)['state_dict'])
    model.eval()
    pre = model.data_preprocessor
    right = robust = total = 0
    for batch in runner.val_dataloader:
        data = pre(batch, False)
        labels = torch.cat([s.gt_label for s in data['data_samples']])
        with torch.no_grad():
            clean = model(data['inputs'], mode='tensor').argmax(1) == labels
        adv = pre.attack_inputs(
            model,
            data['inputs'][clean],
            labels[clean],
            PGDAttack(**{k: v for k, v in VAL_ATTACK.items() if k != 'type'}),
            train_mode=False,
        )
        with torch.no_grad():
            robust += int((model(adv, mode='tensor').argmax(1) == labels[clean]).sum())
        right += int(clean.sum())
        total += len(labels)
    return 100.0 * right / total, 100.0 * robust / total


@pytest.mark.parametrize('priority', ['ABOVE_NORMAL', 'BELOW_NORMAL'])
def test_robust_and_clean_validation_share_the_ema_weights(tmp_path, priority):
    runner = Runner.from_cfg(_cfg(tmp_path, priority, max_epochs=2))
    runner.train()
    if priority == 'BELOW_NORMAL':  # resume one more epoch, EMA state included
        cfg = _cfg(tmp_path, priority, max_epochs=3)
        cfg.resume = True
        runner = Runner.from_cfg(cfg)
        runner.train()
    logged = _logged(tmp_path)
    epochs = [1, 2] + ([3] if priority == 'BELOW_NORMAL' else [])
    assert sorted(logged) == epochs
    for clean, robust in logged.values():
        assert robust <= clean
    # the numbers of the last epoch are those of the saved (EMA) weights
    last = epochs[-1]
    assert logged[last] == pytest.approx(_direct(runner, tmp_path / f'epoch_{last}.pth'))
    # save_best keeps the best robust epoch of this run
    best = max(logged, key=lambda e: (logged[e][1], -e))
    assert list(tmp_path.glob('best_robust_accuracy_top1_epoch_*.pth'))
    assert runner.message_hub.get_info('best_score') == pytest.approx(logged[best][1])
