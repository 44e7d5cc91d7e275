"""NaN loss: stop with a clear message, or skip the step and go on (config)."""

import pytest
import torch
from mmengine.config import Config

import nofrost_mm  # noqa: F401
import tests.reliability.helpers  # noqa: F401  (registers PoisonBatchHook)
from nofrost_mm.engine.runner.nofrost_runner import NoFrostRunner
from tests.conftest import logged_warnings
from tests.reliability.helpers import DEMO


def _train(tmp_path, guard, poison_iters):
    """2 epochs of 4 iterations; the given iterations get a NaN loss."""
    cfg = Config.fromfile(DEMO)
    cfg.merge_from_dict(
        {
            'train_cfg.max_epochs': 2,
            'train_cfg.val_interval': 10,
            'train_dataloader.dataset.indices': 256,
            'val_dataloader.dataset.indices': 120,
        }
    )
    cfg.custom_hooks = [
        dict(type='DivergenceGuardHook', **guard),
        dict(type='PoisonBatchHook', at_iters=poison_iters),
    ]
    cfg.work_dir = str(tmp_path)
    runner = NoFrostRunner.from_cfg(cfg)
    with logged_warnings(runner.logger) as messages:
        with pytest.raises(FloatingPointError) as error:
            runner.train()
    return str(error.value), messages


def test_nan_loss_stops_with_iteration_terms_and_last_checkpoint(tmp_path):
    message, _ = _train(tmp_path, dict(), poison_iters=[6])
    assert 'non-finite loss at iteration 6 (epoch 2)' in message
    assert 'loss terms: loss=nan' in message
    assert f'Last good checkpoint: {tmp_path / "epoch_1.pth"}' in message
    assert not (tmp_path / 'epoch_2.pth').exists()


def test_skip_mode_goes_on_then_stops_after_too_many_in_a_row(tmp_path):
    message, warnings = _train(
        tmp_path, dict(action='skip', max_consecutive_skips=1), poison_iters=[2, 5, 6]
    )
    skips = [w for w in warnings if w.startswith('DivergenceGuardHook')]
    assert len(skips) == 2
    assert 'non-finite loss at iteration 2 (epoch 1); loss terms: loss=nan' in skips[0]
    assert skips[0].endswith('Step skipped (1 in a row, 1 in total).')
    assert 'iteration 5 (epoch 2)' in skips[1]
    assert skips[1].endswith('Step skipped (1 in a row, 2 in total).')
    assert (
        'at iteration 6 (epoch 2) after 2 bad iterations in a row (max_consecutive_skips=1)'
    ) in message
    # the epoch with a skipped step ended with finite weights and BN statistics
    state = torch.load(tmp_path / 'epoch_1.pth', weights_only=True)['state_dict']
    assert all(torch.isfinite(v.float()).all() for v in state.values())
