"""tools/train.py, --resume after a SIGKILL, and tools/test.py, as a user runs them."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import REPO_ROOT, run_tool
from tests.tools.user_path_runs import run_main

CONFIG = 'configs/demo/resnet18-w16_1xb64_digits.py'
SMALL = ['train_dataloader.dataset.indices=256', 'val_dataloader.dataset.indices=120']


def test_train_kill_resume_test(tmp_path):
    work_dir = tmp_path / 'run'
    # a long run, killed as soon as its first checkpoint is on disk
    cmd = [
        sys.executable,
        'tools/train.py',
        CONFIG,
        '--work-dir',
        str(work_dir),
        '--cfg-options',
        'train_cfg.max_epochs=30',
        *SMALL,
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 240
    try:
        while not (work_dir / 'last_checkpoint').exists():
            assert proc.poll() is None, 'training ended before its first checkpoint'
            assert time.time() < deadline, 'no checkpoint after 240 s'
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    last = (work_dir / 'last_checkpoint').read_text().strip()
    killed_at = torch.load(last, weights_only=True)['meta']['epoch']
    assert killed_at < 30

    resumed = run_tool(
        [
            'tools/train.py',
            CONFIG,
            '--work-dir',
            work_dir,
            '--resume',
            '--cfg-options',
            f'train_cfg.max_epochs={killed_at + 1}',
            *SMALL,
        ]
    )
    log = resumed.stdout + resumed.stderr
    assert f'resumed epoch: {killed_at}' in log
    final = work_dir / f'epoch_{killed_at + 1}.pth'
    ckpt = torch.load(final, weights_only=True)  # weights-only stays on
    assert ckpt['meta']['epoch'] == killed_at + 1
    assert 'optimizer' in ckpt and 'param_schedulers' in ckpt

    out = tmp_path / 'metrics.json'
    run_tool(
        [
            'tools/test.py',
            CONFIG,
            final,
            '--work-dir',
            tmp_path / 'test',
            '--out',
            out,
            '--cfg-options',
            'test_dataloader.dataset.indices=120',
        ]
    )
    metrics = json.loads(out.read_text())
    assert 0 <= metrics['accuracy/top1'] <= 100


def test_resume_from_explicit_missing_path_is_clear(tmp_path, monkeypatch):
    # tools/train.py's main in this process: the refusal comes before any work
    with pytest.raises(FileNotFoundError, match='nope.pth: no such checkpoint file'):
        run_main(
            monkeypatch,
            'tools/train.py',
            [CONFIG, '--work-dir', tmp_path, '--resume', tmp_path / 'nope.pth'],
        )
    assert not (tmp_path / 'nope.pth').exists() and list(tmp_path.iterdir()) == []


def test_mmpretrain_config_loads_plugin_through_custom_imports():
    """mmpretrain's own entry points work: the config alone loads nofrost_mm."""
    code = (
        'from mmengine.config import Config; from mmengine.registry import RUNNERS;'
        f"cfg = Config.fromfile('{CONFIG}');"
        "assert cfg.runner_type == 'NoFrostRunner';"
        "assert RUNNERS.get('NoFrostRunner') is not None; print('ok')"
    )
    proc = subprocess.run(
        [sys.executable, '-c', code], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert proc.stdout.strip() == 'ok', proc.stderr
