"""tools/dist_train.sh on CPU: gloo, two processes, identical weights."""
import torch

from tests.conftest import REPO_ROOT, free_port, run_tool

CONFIG = 'configs/demo/resnet18-w16_1xb64_digits.py'


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
    ], env={'PORT': str(free_port())}, timeout=300)
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


def test_attacking_preprocessor_without_hook_fails_before_data(tmp_path):
    from mmengine.config import Config
    from mmengine.registry import RUNNERS
    import pytest

    import nofrost_mm  # noqa: F401
    cfg = Config.fromfile(str(REPO_ROOT / 'configs/demo/resnet18-w16_1xb64_digits_pgdat.py'))
    cfg.custom_hooks = []
    cfg.work_dir = str(tmp_path)
    runner = RUNNERS.build(cfg)
    with pytest.raises(ValueError, match=r"custom_hooks = \[dict\(type='AdversarialTrainingHook'\)\]"):
        runner.train()
    # the train dataloader was never built: no data was read
    assert isinstance(runner._train_dataloader, dict)
