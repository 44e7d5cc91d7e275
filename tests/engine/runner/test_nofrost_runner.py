"""tools/dist_train.sh on CPU: gloo, two processes, identical weights."""
import socket

import torch

from tests.conftest import REPO_ROOT, run_tool

CONFIG = 'configs/demo/resnet18-w16_1xb64_digits.py'


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_dist_train_two_cpu_processes_agree(tmp_path):
    work_dir = tmp_path / 'dist'
    config = tmp_path / 'dist_config.py'
    config.write_text(
        f"_base_ = '{REPO_ROOT / CONFIG}'\n"
        "custom_imports = dict(imports=['nofrost_mm', "
        "'tests.engine.runner.dump_rank_weights'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='DumpRankWeightsHook')]\n")
    proc = run_tool([
        'tools/dist_train.sh', config, '2', '--work-dir', work_dir,
        '--cfg-options', 'train_cfg.max_epochs=1',
        'train_dataloader.dataset.indices=256', 'train_dataloader.batch_size=32',
        'val_dataloader.dataset.indices=64'
    ], env={'PORT': str(_free_port())}, timeout=300)
    log = proc.stdout + proc.stderr
    assert 'Distributed launcher: pytorch' in log
    assert 'Distributed training: True' in log
    rank0 = torch.load(work_dir / 'rank0_weights.pth')
    rank1 = torch.load(work_dir / 'rank1_weights.pth')
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    # 256 samples / (2 ranks x 32) = 4 iterations on each rank
    assert 'Epoch(train) [1][4/4]' in log
    assert (work_dir / 'epoch_1.pth').is_file()
