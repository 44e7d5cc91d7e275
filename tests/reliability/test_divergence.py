"""NaN loss: stop with a clear message, or skip the step and go on (config)."""
import torch

import nofrost_mm  # noqa: F401
from tests.conftest import run_tool
from tests.reliability.helpers import SMALL, write_config

# 256 images, batch 64: 4 iterations per epoch
OPTIONS = ['train_cfg.max_epochs=2', 'train_cfg.val_interval=10', *SMALL]


def test_nan_loss_stops_with_iteration_terms_and_last_checkpoint(tmp_path):
    config = write_config(tmp_path / 'cfg.py', body=(
        "custom_hooks = [dict(type='DivergenceGuardHook'),\n"
        "                dict(type='PoisonBatchHook', at_iters=[6])]\n"))
    work = tmp_path / 'run'
    proc = run_tool(['tools/train.py', config, '--work-dir', work,
                     '--cfg-options', *OPTIONS], check=False)
    assert proc.returncode != 0
    message = [line for line in proc.stderr.splitlines()
               if line.startswith('FloatingPointError')]
    assert message, proc.stderr[-2000:]
    assert 'non-finite loss at iteration 6 (epoch 2)' in message[0]
    assert 'loss=nan' in message[0]
    assert f'Last good checkpoint: {work / "epoch_1.pth"}' in message[0]
    assert not (work / 'epoch_2.pth').exists()


def test_skip_mode_goes_on_then_stops_after_too_many_in_a_row(tmp_path):
    config = write_config(tmp_path / 'cfg.py', body=(
        "custom_hooks = [dict(type='DivergenceGuardHook', action='skip',\n"
        "                     max_consecutive_skips=1),\n"
        "                dict(type='PoisonBatchHook', at_iters=[2, 5, 6])]\n"))
    work = tmp_path / 'run'
    proc = run_tool(['tools/train.py', config, '--work-dir', work,
                     '--cfg-options', *OPTIONS], check=False)
    log = proc.stdout + proc.stderr
    assert 'non-finite loss at iteration 2 (epoch 1); loss terms: loss=nan' in log
    assert 'Step skipped (1 in a row, 1 in total)' in log
    assert 'Step skipped (1 in a row, 2 in total)' in log  # iteration 5
    assert proc.returncode != 0
    assert ('at iteration 6 (epoch 2) after 2 bad iterations in a row '
            '(max_consecutive_skips=1)') in proc.stderr
    # the epoch with a skipped step ended with finite weights and BN statistics
    state = torch.load(work / 'epoch_1.pth', weights_only=True)['state_dict']
    assert all(torch.isfinite(v.float()).all() for v in state.values())
