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
        "custom_hooks = [dict(type='DumpRankWeightsHook')]\n"
    )
    proc = run_tool(
        [
            'tools/dist_train.sh',
            config,
            '2',
            '--work-dir',
            work_dir,
            '--cfg-options',
            'train_cfg.max_epochs=1',
            'train_dataloader.dataset.indices=256',
            'train_dataloader.batch_size=32',
            'val_dataloader.dataset.indices=64',
        ],
        env={'PORT': str(free_port())},
        timeout=300,
    )
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
    import pytest
    from mmengine.config import Config
    from mmengine.registry import RUNNERS

    import nofrost_mm  # noqa: F401

    cfg = Config.fromfile(str(REPO_ROOT / 'configs/demo/resnet18-w16_1xb64_digits_pgdat.py'))
    cfg.custom_hooks = []
    cfg.work_dir = str(tmp_path)
    runner = RUNNERS.build(cfg)
    with pytest.raises(
        ValueError, match=r"custom_hooks = \[dict\(type='AdversarialTrainingHook'\)\]"
    ):
        runner.train()
    # the train dataloader was never built: no data was read
    assert isinstance(runner._train_dataloader, dict)


def test_validation_leaves_the_rng_streams_as_they_were(tmp_path):
    """Hooks around validation draw from python's, numpy's and torch's RNGs,
    and the val data is shuffled: the training stream after validation is
    the one from before it (NoFrostRunner's first before_val and last
    after_val hooks), with the val loop's run method left as mmengine's."""
    import random

    import numpy as np
    from mmengine.config import Config
    from mmengine.hooks import Hook
    from mmengine.registry import RUNNERS

    import nofrost_mm  # noqa: F401

    class Draws(Hook):
        def before_val(self, runner):
            random.random(), np.random.rand(), torch.rand(1)

        after_val = before_val

    cfg = Config.fromfile(str(REPO_ROOT / CONFIG))
    cfg.work_dir = str(tmp_path)
    cfg.val_dataloader.sampler = dict(type='DefaultSampler', shuffle=True)
    runner = RUNNERS.build(cfg)
    for priority in ('HIGHEST', 'VERY_LOW'):
        runner.register_hook(Draws(), priority=priority)

    def states():
        return random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()

    before = states()
    runner.val()
    after = states()
    assert before[0] == after[0]
    assert np.array_equal(before[1], after[1])
    assert torch.equal(before[2], after[2])
    assert runner.rng_before_val is None  # only set while validation runs
    assert 'run' not in vars(runner.val_loop)  # mmengine's ValLoop.run
