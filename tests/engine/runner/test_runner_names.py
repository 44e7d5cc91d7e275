"""NoFrostRunner: runners of one config in one process never share mmengine instances."""

import time

import mmengine.runner.runner as mmengine_runner
from mmengine.config import Config

from nofrost_mm.engine.runner import NoFrostRunner
from tests.conftest import REPO_ROOT


class _FrozenClock:
    """mmengine's runner module sees one fixed second (both runners get one timestamp)."""

    def __init__(self):
        self.now = time.time()

    def time(self):
        return self.now

    def __getattr__(self, name):
        return getattr(time, name)


def _runner(work_dir, epochs):
    cfg = Config.fromfile(REPO_ROOT / 'configs/demo/resnet18-w16_1xb64_digits.py')
    cfg.merge_from_dict(
        dict(
            work_dir=str(work_dir),
            train_cfg=dict(max_epochs=epochs, val_interval=10),
            train_dataloader=dict(batch_size=16, dataset=dict(indices=16)),
            val_dataloader=dict(dataset=dict(indices=16)),
        )
    )
    return NoFrostRunner.from_cfg(cfg)


def test_a_second_runner_in_the_same_second_keeps_its_own_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setattr(mmengine_runner, 'time', _FrozenClock())
    first = _runner(tmp_path / 'a', epochs=2)
    first.train()
    second = _runner(tmp_path / 'b', epochs=3)
    assert second.timestamp == first.timestamp
    assert second.experiment_name != first.experiment_name
    assert second.message_hub is not first.message_hub
    assert second.logger is not first.logger
    second.train()
    # with the first run's message hub, CheckpointHook (max_keep_ckpts=3) took
    # over its list [1, 2] and deleted this run's epoch_1.pth at epoch 2
    assert sorted(p.name for p in (tmp_path / 'b').glob('epoch_*.pth')) == [
        'epoch_1.pth',
        'epoch_2.pth',
        'epoch_3.pth',
    ]
    assert sorted(p.name for p in (tmp_path / 'a').glob('epoch_*.pth')) == [
        'epoch_1.pth',
        'epoch_2.pth',
    ]


def test_a_given_experiment_name_is_kept(tmp_path):
    cfg = Config.fromfile(REPO_ROOT / 'configs/demo/resnet18-w16_1xb64_digits.py')
    cfg.merge_from_dict(dict(work_dir=str(tmp_path), experiment_name='mine'))
    runner = NoFrostRunner.from_cfg(cfg)
    assert runner.experiment_name == f'mine_{runner.timestamp}'
