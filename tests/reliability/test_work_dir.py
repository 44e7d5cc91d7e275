"""A reused work dir keeps the earlier run; --resume on a finished run, a
missing file or an empty folder says what it does."""

import hashlib
import importlib.util
import sys

import pytest
from mmengine.config import Config

import nofrost_mm  # noqa: F401
from nofrost_mm.engine.runner import NoFrostRunner
from tests.conftest import REPO_ROOT, free_port, run_tool
from tests.reliability.helpers import DEMO, SMALL
from tests.tools.user_path_runs import run_main

# one tiny epoch with a validation, keeping the best checkpoint as the run did
TINY = [*SMALL, 'train_cfg.max_epochs=1', 'default_hooks.checkpoint.save_best=accuracy/top1']


def _top_level_md5s(folder):
    return {
        p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()
    }


@pytest.fixture(scope='module')
def finished_run(tmp_path_factory):
    """A finished 1-epoch run, started with --resume in a folder that did not exist."""
    work = tmp_path_factory.mktemp('reused') / 'run'
    proc = run_tool(
        ['tools/train.py', DEMO, '--work-dir', work, '--resume', '--cfg-options', *TINY]
    )
    return work, proc.stdout + proc.stderr


def test_resume_in_an_empty_folder_says_it_starts_from_scratch(finished_run):
    work, out = finished_run
    assert (
        f'--resume: no complete checkpoint in {work} to resume from: '
        'training starts from scratch' in out
    )
    files = _top_level_md5s(work)
    assert {
        'epoch_1.pth',
        'last_checkpoint',
        'best_accuracy_top1_epoch_1.pth',
        'resnet18-w16_1xb64_digits.py',
    } <= set(files)


def _assert_refused(proc, work):
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert 'FileExistsError' in out
    _assert_refusal_says_what_to_do(out, work)
    assert 'Epoch(train)' not in out


def _assert_refusal_says_what_to_do(out, work):
    assert (
        f'work_dir {work} already holds the checkpoints of an earlier run '
        '(best_accuracy_top1_epoch_1.pth, epoch_1.pth, last_checkpoint)' in out
    )
    assert 'Continue that run with --resume' in out
    assert '--work-dir NEW_DIR' in out and 'overwrite_work_dir=True' in out


def test_a_new_run_into_a_used_work_dir_is_refused(finished_run, monkeypatch):
    """The issue's command: it rewrote epoch_1.pth and best_*.pth, rc 0.

    tools/train.py's main in this process (the refusal comes before any
    work; the command itself is refused in the test below, distributed)."""
    work, _ = finished_run
    before = _top_level_md5s(work)
    folders = sorted(p.name for p in work.iterdir() if p.is_dir())
    with pytest.raises(FileExistsError) as info:
        run_main(
            monkeypatch,
            'tools/train.py',
            [DEMO, '--work-dir', work, '--cfg-options', *TINY, 'randomness.seed=1'],
        )
    _assert_refusal_says_what_to_do(str(info.value), work)
    assert _top_level_md5s(work) == before
    # refused before anything was built: not even a log folder
    assert sorted(p.name for p in work.iterdir() if p.is_dir()) == folders


def test_mmpretrain_train_tool_is_refused_too_in_two_processes(finished_run):
    """mmpretrain's own tools/train.py, distributed: the runner refuses, every
    rank alike (rank 0 decides), before a checkpoint is written."""
    work, _ = finished_run
    before = _top_level_md5s(work)
    tool = (
        importlib.util.find_spec('mmpretrain').submodule_search_locations[0]
        + '/.mim/tools/train.py'
    )
    proc = run_tool(
        [
            sys.executable,
            '-m',
            'torch.distributed.run',
            '--nproc_per_node=2',
            f'--master_port={free_port()}',
            tool,
            DEMO,
            '--launcher',
            'pytorch',
            '--work-dir',
            work,
            '--cfg-options',
            *TINY,
            'randomness.seed=1',
        ],
        check=False,
        timeout=240,
    )
    _assert_refused(proc, work)
    assert proc.stderr.count('FileExistsError: work_dir') >= 2  # both ranks
    assert _top_level_md5s(work) == before


def test_resuming_a_finished_run_does_nothing_and_says_so(finished_run):
    """It exited 0 silently and rewrote the work dir's config copy."""
    work, _ = finished_run
    before = _top_level_md5s(work)
    # a config that differs from the first run's (its copy must stay the first's)
    proc = run_tool(
        [
            'tools/train.py',
            DEMO,
            '--work-dir',
            work,
            '--resume',
            '--cfg-options',
            *TINY,
            'default_hooks.logger.interval=5',
        ]
    )
    out = proc.stdout + proc.stderr
    assert (
        f'{work}/epoch_1.pth: this run is already complete (epoch 1 of 1): '
        'nothing to do; raise train_cfg.max_epochs to train further' in out
    )
    assert 'Epoch(train)' not in out and 'Epoch(val)' not in out
    assert _top_level_md5s(work) == before


def _train_tool():
    spec = importlib.util.spec_from_file_location(
        'nofrost_train_tool', REPO_ROOT / 'tools/train.py'
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_resume_from_a_missing_file_or_a_folder_is_clear(tmp_path, monkeypatch):
    """tools/train.py's own check, before anything is built."""
    tool = _train_tool()

    def merge(*argv):
        monkeypatch.setattr(sys, 'argv', ['tools/train.py', str(DEMO), *map(str, argv)])
        with pytest.raises(FileNotFoundError) as info:
            tool.merge_args(Config.fromfile(DEMO), tool.parse_args())
        return str(info.value)

    missing = tmp_path / 'epoch_9.pth'
    assert merge('--work-dir', tmp_path / 'w', '--resume', missing) == (
        f'--resume {missing}: no such checkpoint file. Give an existing '
        'epoch_N.pth, or --resume alone to continue the newest checkpoint in '
        f'the work dir ({tmp_path / "w"})'
    )
    assert merge('--resume', tmp_path) == (
        f'--resume {tmp_path} is a folder, not a checkpoint file: to continue '
        f'the newest checkpoint of a work dir, give `--work-dir {tmp_path} --resume`'
    )


def test_overwriting_a_work_dir_is_an_explicit_choice(tmp_path):
    """overwrite_work_dir=True: the user accepts that the earlier files go."""
    cfg = Config.fromfile(DEMO)
    cfg.merge_from_dict(
        {
            'work_dir': str(tmp_path),
            'train_cfg.max_epochs': 1,
            'log_level': 'WARNING',
            'train_dataloader.dataset.indices': 64,
            'val_dataloader.dataset.indices': 32,
        }
    )
    NoFrostRunner.from_cfg(cfg).train()
    before = _top_level_md5s(tmp_path)['epoch_1.pth']
    with pytest.raises(FileExistsError, match='already holds the checkpoints'):
        NoFrostRunner.from_cfg(cfg).train()
    assert _top_level_md5s(tmp_path)['epoch_1.pth'] == before
    cfg.overwrite_work_dir = True
    NoFrostRunner.from_cfg(cfg).train()
    assert _top_level_md5s(tmp_path)['epoch_1.pth'] != before
