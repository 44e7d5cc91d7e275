"""Atomic checkpoint writes, auto-resume past a broken file, clear load errors."""
import copy

import pytest
import torch
from mmengine.config import Config

import nofrost_mm  # noqa: F401
from nofrost_mm.engine.runner.nofrost_runner import (CheckpointLoadError,
                                                     NoFrostRunner)
from tests.conftest import run_tool
from tests.reliability.helpers import DEMO


@pytest.fixture(scope='module')
def runner(tmp_path_factory):
    cfg = Config.fromfile(DEMO)
    cfg.work_dir = str(tmp_path_factory.mktemp('runner'))
    cfg.train_dataloader.dataset.indices = 64
    cfg.val_dataloader.dataset.indices = 32
    cfg.log_level = 'WARNING'
    return NoFrostRunner.from_cfg(cfg)


def _good_checkpoint(runner, path):
    runner.save_checkpoint(str(path.parent), path.name, save_optimizer=False,
                           save_param_scheduler=False)
    return path


def test_save_is_atomic_and_carries_rng_states(runner, tmp_path, monkeypatch):
    path = _good_checkpoint(runner, tmp_path / 'epoch_1.pth')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch_1.pth']
    ckpt = torch.load(path, weights_only=True)
    assert set(ckpt['meta']['rng_states'][0]) >= {'python', 'numpy', 'torch'}
    good_bytes = path.read_bytes()

    def killed_while_writing(checkpoint, filename, **kwargs):
        with open(filename, 'wb') as f:
            f.write(b'PK\x03\x04 half a checkpoint')
        raise KeyboardInterrupt  # stands for SIGKILL in the middle of the write

    monkeypatch.setattr('mmengine.runner.runner.save_checkpoint',
                        killed_while_writing)
    with pytest.raises(KeyboardInterrupt):
        runner.save_checkpoint(str(tmp_path), 'epoch_1.pth',
                               save_optimizer=False, save_param_scheduler=False)
    assert path.read_bytes() == good_bytes  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch_1.pth']


@pytest.mark.parametrize('pointer', ['names a truncated file', 'is empty'])
def test_auto_resume_skips_an_incomplete_checkpoint(runner, tmp_path, pointer):
    work = tmp_path
    good = _good_checkpoint(runner, work / 'epoch_1.pth')
    bad = work / 'epoch_2.pth'
    bad.write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    (work / 'last_checkpoint').write_text(
        str(bad) if pointer == 'names a truncated file' else '')
    old_dir = runner._work_dir
    runner._work_dir = str(work)
    try:
        assert runner._latest_complete_checkpoint() == str(good)
    finally:
        runner._work_dir = old_dir


def _assert_load_error(runner, path, *fragments, resume=False):
    runner._resuming = resume
    try:
        with pytest.raises(CheckpointLoadError) as info:
            runner.load_checkpoint(str(path))
    finally:
        runner._resuming = False
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_truncated_and_corrupted_files(runner, tmp_path):
    good = _good_checkpoint(runner, tmp_path / 'good.pth')
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(good.read_bytes()[:4096])
    _assert_load_error(runner, truncated, 'truncated or corrupted')
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'\x00\x01not a checkpoint at all' * 10)
    _assert_load_error(runner, garbage, 'corrupted')
    _assert_load_error(runner, tmp_path / 'missing.pth', 'no such file')


def test_objects_outside_weights_only_allow_list(runner, tmp_path):
    path = tmp_path / 'pickled.pth'
    torch.save({'state_dict': {}, 'meta': {}, 'extra': copy.Error('x')}, path)
    _assert_load_error(runner, path, 'weights-only allow-list')


def test_checkpoint_of_another_architecture(runner, tmp_path):
    from mmpretrain.registry import MODELS
    cfg = copy.deepcopy(Config.fromfile(DEMO).model)
    cfg.backbone.update(stem_channels=32, base_channels=32)
    cfg.head.in_channels = 256
    other = MODELS.build(cfg)
    path = tmp_path / 'other.pth'
    torch.save({'meta': {'epoch': 1, 'iter': 1}, 'state_dict': other.state_dict()},
               path)
    message = _assert_load_error(runner, path, 'does not fit the model',
                                 'of other shape', 'backbone.conv1.weight')
    assert 'timm' not in message


def test_timm_state_dict(runner, tmp_path):
    timm = pytest.importorskip('timm')  # a test dependency (requirements/tests.txt)
    path = tmp_path / 'nf_resnet50_timm.pth'
    torch.save(timm.create_model('nf_resnet50', pretrained=False).state_dict(), path)
    _assert_load_error(runner, path, 'does not fit the model', 'timm model state dict')
    _assert_load_error(runner, path, 'cannot be resumed', 'bare state dict',
                       resume=True)
    # as a user meets it: the timm file given to the test tool
    proc = run_tool(['tools/test.py', DEMO, path, '--work-dir', tmp_path / 'test',
                     '--cfg-options', 'test_dataloader.dataset.indices=8'],
                    check=False)
    assert proc.returncode != 0
    assert 'CheckpointLoadError' in proc.stderr
    assert f'checkpoint {path} does not fit the model' in proc.stderr
    assert 'timm model state dict' in proc.stderr
    assert 'Epoch(test)' not in proc.stdout + proc.stderr


def test_train_resume_from_truncated_file_is_clear(tmp_path, runner):
    """``tools/train.py --resume FILE`` sets resume=True, load_from=FILE."""
    good = _good_checkpoint(runner, tmp_path / 'good.pth')
    truncated = tmp_path / 'epoch_3.pth'
    truncated.write_bytes(good.read_bytes()[:10000])
    cfg = Config.fromfile(DEMO)
    cfg.merge_from_dict({'train_dataloader.dataset.indices': 64, 'resume': True,
                         'load_from': str(truncated), 'work_dir': str(tmp_path / 'run')})
    with pytest.raises(CheckpointLoadError,
                       match=f'checkpoint {truncated} is truncated or corrupted'):
        NoFrostRunner.from_cfg(cfg).train()
