"""SIGKILL mid-epoch, --resume: the same weights as an uninterrupted run (CPU)."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import nofrost_mm  # noqa: F401  (weights-only loading of mmengine checkpoints)
from tests.conftest import REPO_ROOT, run_tool
from tests.reliability.helpers import SMALL, write_config

# (config, options, iterations per epoch); 3 epochs, killed in the second
CONFIGS = {
    # BN ResNet, RandomCrop (numpy RNG), validation every epoch (RNG isolation)
    'bn-standard': (
        'configs/demo/resnet18-w16_1xb64_digits.py',
        ['train_cfg.val_interval=1', *SMALL],
        4,
    ),
    # NF ResNet PGD-AT: random PGD start and dropout (torch RNG), eps warm-up
    # over the 3 epochs, clean and robust validation (random start) each epoch
    'nf-pgdat': (
        'configs/demo/nf-resnet18-w16_1xb64_digits_pgdat.py',
        [
            'train_dataloader.dataset.indices=128',
            'val_dataloader.dataset.indices=30',
            'train_cfg.val_interval=1',
            'custom_hooks.0.eps_warmup=3',
            'custom_hooks.0.adv_val_interval=1',
            'custom_hooks.0.val_attack.steps=2',
        ],
        2,
    ),
    # dual BN: both branches' statistics, batch counts and parameters
    'dualbn-pgdat': (
        'configs/dualbn/resnet18-w16-dualbn_1xb64_digits_pgdat.py',
        [
            'train_dataloader.dataset.indices=128',
            'val_dataloader.dataset.indices=30',
            'train_cfg.val_interval=1',
            'custom_hooks.0.eps_warmup=3',
            'custom_hooks.0.adv_val_interval=1',
            'custom_hooks.0.val_attack.steps=2',
        ],
        2,
    ),
}


@pytest.mark.parametrize('name', list(CONFIGS))
def test_sigkill_mid_epoch_then_resume_is_exact(tmp_path, name):
    base, options, iters_per_epoch = CONFIGS[name]
    options = ['train_cfg.max_epochs=3', *options]
    plain = write_config(tmp_path / 'plain.py', REPO_ROOT / base)
    marker = tmp_path / 'paused'
    pausing = tmp_path / 'pausing.py'
    pausing.write_text(
        f"_base_ = '{plain}'\n"
        "custom_hooks = [*_base_.get('custom_hooks', []), dict(type="
        f"'PauseAtIterHook', at_iter={iters_per_epoch + iters_per_epoch // 2}"
        f", marker='{marker}')]\n"
    )

    run_tool(['tools/train.py', plain, '--work-dir', tmp_path / 'whole', '--cfg-options', *options])

    work = tmp_path / 'killed'
    proc = subprocess.Popen(
        [sys.executable, 'tools/train.py', pausing, '--work-dir', work, '--cfg-options', *options],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
    )
    deadline = time.time() + 240
    try:
        while not marker.exists():
            assert proc.poll() is None, 'training ended before the kill point'
            assert time.time() < deadline, 'kill point not reached in 240 s'
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert (work / 'epoch_1.pth').is_file() and not (work / 'epoch_2.pth').exists()

    resumed = run_tool(
        ['tools/train.py', plain, '--work-dir', work, '--resume', '--cfg-options', *options]
    )
    log = resumed.stdout + resumed.stderr
    assert 'resumed epoch: 1' in log
    assert 'Restored the RNG states saved in the checkpoint.' in log

    whole = torch.load(tmp_path / 'whole' / 'epoch_3.pth', weights_only=True)
    again = torch.load(work / 'epoch_3.pth', weights_only=True)
    diffs = {
        k: (whole['state_dict'][k].double() - v.double()).abs().max().item()
        for k, v in again['state_dict'].items()
    }
    print(f'{name}: max |w(uninterrupted) - w(killed + resumed)| = {max(diffs.values()):.3g}')
    assert max(diffs.values()) <= 1e-6, sorted(diffs.items(), key=lambda kv: -kv[1])[:3]
    # optimizer (momentum buffers) and scheduler continue exactly too
    for sa, sb in zip(whole['optimizer']['state'].values(), again['optimizer']['state'].values()):
        assert torch.allclose(sa['momentum_buffer'], sb['momentum_buffer'], rtol=0, atol=1e-6)
    assert whole['param_schedulers'] == again['param_schedulers']
