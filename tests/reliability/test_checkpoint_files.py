"""Atomic checkpoint writes, auto-resume past a broken file, clear load errors;
damaged checkpoints through every door that reads them."""

import copy
import os
import re
import shutil
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger

import nofrost_mm  # noqa: F401
from nofrost_mm.engine.runner.nofrost_runner import NoFrostRunner
from nofrost_mm.utils import CheckpointLoadError
from tests.conftest import logged_warnings, run_tool
from tests.reliability.helpers import DAMAGES, DEMO, damage, expected_problem


@pytest.fixture(scope='module')
def runner(tmp_path_factory):
    cfg = Config.fromfile(DEMO)
    cfg.work_dir = str(tmp_path_factory.mktemp('runner'))
    cfg.train_dataloader.dataset.indices = 64
    cfg.val_dataloader.dataset.indices = 32
    cfg.log_level = 'WARNING'
    return NoFrostRunner.from_cfg(cfg)


def _good_checkpoint(runner, path):
    runner.save_checkpoint(
        str(path.parent), path.name, save_optimizer=False, save_param_scheduler=False
    )
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

    monkeypatch.setattr('mmengine.runner.runner.save_checkpoint', killed_while_writing)
    with pytest.raises(KeyboardInterrupt):
        runner.save_checkpoint(
            str(tmp_path), 'epoch_1.pth', save_optimizer=False, save_param_scheduler=False
        )
    assert path.read_bytes() == good_bytes  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch_1.pth']


@pytest.mark.parametrize('pointer', ['names a truncated file', 'is empty'])
def test_auto_resume_skips_an_incomplete_checkpoint(runner, tmp_path, pointer):
    work = tmp_path
    good = _good_checkpoint(runner, work / 'epoch_1.pth')
    bad = work / 'epoch_2.pth'
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    (work / 'last_checkpoint').write_text(str(bad) if pointer == 'names a truncated file' else '')
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
    torch.save({'meta': {'epoch': 1, 'iter': 1}, 'state_dict': other.state_dict()}, path)
    message = _assert_load_error(
        runner, path, 'does not fit the model', 'of other shape', 'backbone.conv1.weight'
    )
    assert 'timm' not in message


def _tools_test_refuses(monkeypatch, path, work_dir, *extra):
    """tools/test.py's main in this process on ``path``: the load error it
    stops with (a subprocess would spend most of the test importing torch;
    test_damaged_checkpoints_through_tools_test runs the command itself)."""
    from tests.tools.user_path_runs import run_main

    def tested(runner):
        pytest.fail(f'{path} was loaded and tested')

    # the runner reaches its test loop only after the checkpoint has loaded
    monkeypatch.setattr(NoFrostRunner, 'test_loop', property(tested))
    with pytest.raises(CheckpointLoadError) as info:
        run_main(
            monkeypatch,
            'tools/test.py',
            [
                DEMO,
                path,
                *extra,
                '--work-dir',
                work_dir,
                '--cfg-options',
                'test_dataloader.dataset.indices=8',
            ],
        )
    return str(info.value)


def test_timm_state_dict(runner, tmp_path, monkeypatch):
    timm = pytest.importorskip('timm')  # a test dependency (requirements/tests.txt)
    path = tmp_path / 'nf_resnet50_timm.pth'
    torch.save(timm.create_model('nf_resnet50', pretrained=False).state_dict(), path)
    _assert_load_error(runner, path, 'does not fit the model', 'timm model state dict')
    _assert_load_error(runner, path, 'cannot be resumed', 'bare state dict', resume=True)
    # as a user meets it: the timm file given to the test tool
    message = _tools_test_refuses(monkeypatch, path, tmp_path / 'test')
    assert f'checkpoint {path} does not fit the model' in message
    assert 'timm model state dict' in message


def test_train_resume_from_truncated_file_is_clear(tmp_path, runner):
    """``tools/train.py --resume FILE`` sets resume=True, load_from=FILE."""
    good = _good_checkpoint(runner, tmp_path / 'good.pth')
    truncated = tmp_path / 'epoch_3.pth'
    truncated.write_bytes(good.read_bytes()[:10000])
    cfg = Config.fromfile(DEMO)
    cfg.merge_from_dict(
        {
            'train_dataloader.dataset.indices': 64,
            'resume': True,
            'load_from': str(truncated),
            'work_dir': str(tmp_path / 'run'),
        }
    )
    with pytest.raises(
        CheckpointLoadError, match=f'checkpoint {truncated}: truncated or corrupted'
    ):
        NoFrostRunner.from_cfg(cfg).train()


@pytest.fixture(scope='module')
def damaged(runner, tmp_path_factory):
    """A whole checkpoint of the demo model and its flipped, random and truncated copies."""
    folder = tmp_path_factory.mktemp('damaged')
    good = _good_checkpoint(runner, folder / 'good.pth')
    return good, {how: damage(good, folder / f'{how}.pth', how) for how in DAMAGES}


def test_flipped_bytes_are_invisible_to_torch_but_not_to_the_reader(damaged):
    """The damage the doors must catch: torch itself loads the flipped file."""
    good, files = damaged
    flipped = torch.load(files['flipped'], weights_only=True)['state_dict']
    whole = torch.load(good, weights_only=True)['state_dict']
    assert any(not torch.equal(flipped[k], whole[k]) for k in whole)


@pytest.mark.parametrize('how', DAMAGES)
def test_damaged_checkpoint_through_the_runner(runner, damaged, how):
    """load_from / tools/test.py, and --resume FILE: the file and the damage named."""
    path = damaged[1][how]
    _assert_load_error(runner, path, expected_problem(path, how))
    _assert_load_error(runner, path, expected_problem(path, how), resume=True)


def test_damaged_checkpoints_through_tools_test(damaged, tmp_path, monkeypatch):
    """As the issue met them: tools/test.py CFG FILE --attacks none evaluated a
    flipped file (rc 0) and died with a bare IndexError on random bytes.

    The command itself on the random bytes, its main in this process on the
    other damages."""
    for how, path in damaged[1].items():
        if how != 'random':
            message = _tools_test_refuses(monkeypatch, path, tmp_path / how, '--attacks', 'none')
            assert f'checkpoint {path}: ' in message, how
            assert expected_problem(path, how) in message, how
            continue
        proc = run_tool(
            [
                'tools/test.py',
                DEMO,
                path,
                '--attacks',
                'none',
                '--work-dir',
                tmp_path / how,
                '--cfg-options',
                'test_dataloader.dataset.indices=8',
            ],
            check=False,
        )
        assert proc.returncode != 0, how
        assert 'CheckpointLoadError' in proc.stderr, proc.stderr[-2000:]
        assert f'checkpoint {path}: ' in proc.stderr
        assert expected_problem(path, how) in proc.stderr
        assert 'Epoch(test)' not in proc.stdout + proc.stderr


@pytest.mark.parametrize('how', DAMAGES)
def test_damaged_checkpoint_through_the_overfitting_guard_rollback(damaged, how):
    from nofrost_mm.engine.hooks import CatastrophicOverfittingHook

    hook = CatastrophicOverfittingHook(action='rollback')
    hook.last_good = str(damaged[1][how])
    # the file is read before the runner is touched
    with pytest.raises(CheckpointLoadError, match=re.escape(expected_problem(hook.last_good, how))):
        hook._rollback(runner=None)


def test_divergence_guard_names_a_complete_checkpoint(damaged, tmp_path):
    """last_checkpoint names a flipped epoch_2.pth: the guard's "resume from"
    is the whole epoch_1.pth (mmengine's find_latest_checkpoint trusts the
    pointer)."""
    from nofrost_mm.engine.hooks import DivergenceGuardHook

    good, files = damaged
    shutil.copy(good, tmp_path / 'epoch_1.pth')
    shutil.copy(files['flipped'], tmp_path / 'epoch_2.pth')
    os.utime(tmp_path / 'epoch_1.pth', (1, 1))
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_2.pth'))
    logger = MMLogger.get_current_instance()
    fake_runner = SimpleNamespace(iter=7, epoch=2, work_dir=str(tmp_path), logger=logger)
    with logged_warnings(logger) as warnings, pytest.raises(FloatingPointError) as info:
        DivergenceGuardHook(action='stop').after_train_iter(
            fake_runner, 0, outputs={'loss': torch.tensor(float('nan'))}
        )
    assert f'Last good checkpoint: {tmp_path / "epoch_1.pth"}.' in str(info.value)
    assert any('epoch_2.pth' in w and 'fails its CRC check' in w for w in warnings)


@pytest.mark.parametrize('how', DAMAGES)
def test_damaged_checkpoint_through_load_classifier(damaged, how):
    """The analysis tools' door (decision_margin.py, smoothness.py)."""
    from nofrost_mm.evaluation.robustness_analysis import load_classifier

    path = damaged[1][how]
    with pytest.raises(CheckpointLoadError) as info:
        load_classifier(str(DEMO), str(path))
    assert str(path) in str(info.value)
    assert expected_problem(path, how) in str(info.value)


def test_load_classifier_loads_a_whole_checkpoint_and_refuses_another_model(
    runner, damaged, tmp_path
):
    from nofrost_mm.evaluation.robustness_analysis import load_classifier

    good = damaged[0]
    net, _ = load_classifier(str(DEMO), str(good))
    weights = torch.load(good, weights_only=True)['state_dict']
    loaded = dict(net.named_parameters())
    key = 'backbone.conv1.weight'
    assert any(torch.equal(p, weights[key]) for n, p in loaded.items() if n.endswith(key))
    # mmengine's load_checkpoint (strict=False) loaded nothing of it, silently
    other = tmp_path / 'other.pth'
    torch.save({'state_dict': {'head.fc.weight': torch.zeros(3, 3)}}, other)
    with pytest.raises(CheckpointLoadError, match='does not fit the model'):
        load_classifier(str(DEMO), str(other))


def test_auto_resume_passes_over_a_flipped_checkpoint(runner, damaged, tmp_path):
    good, files = damaged
    shutil.copy(good, tmp_path / 'epoch_1.pth')
    os.utime(tmp_path / 'epoch_1.pth', (1, 1))
    shutil.copy(files['flipped'], tmp_path / 'epoch_2.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_2.pth'))
    old_dir = runner._work_dir
    runner._work_dir = str(tmp_path)
    try:
        assert runner._latest_complete_checkpoint() == str(tmp_path / 'epoch_1.pth')
    finally:
        runner._work_dir = old_dir


def test_a_damaged_evaluation_chunk_is_evaluated_again(tmp_path):
    """tools/test.py --resume reads finished batches back: a damaged one is
    attacked again (same seed, same result) instead of read as results."""
    from nofrost_mm.engine.runner.evaluation_state import EvaluationState

    state = EvaluationState(str(tmp_path / 'state'), {'run': 1}, resume=False)
    results = [{'margin': torch.arange(4000.0)}]
    state.save(0, results)
    assert torch.equal(state.load(0)[0]['margin'], results[0]['margin'])
    chunk = tmp_path / 'state' / 'chunk_000000.pth'
    damage(chunk, chunk, 'flipped')
    logger = MMLogger.get_current_instance()
    with logged_warnings(logger) as warnings:
        assert state.load(0) is None
    assert any(str(chunk) in w and 'fails its CRC check' in w for w in warnings)
