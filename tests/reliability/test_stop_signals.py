"""SIGTERM / SIGINT during tools/test.py or tools/train.py: one line saying what
was saved and the command that continues, then the signal's own exit status."""

import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
import torch
from mmengine.config import Config

from tests.conftest import REPO_ROOT
from tests.reliability.helpers import DEMO, SMALL, write_config


def _start(args, tmp_path):
    """A tool as a user starts it (python tools/X.py ...), from the repository root."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.Popen(
        [sys.executable, *map(str, args)],
        cwd=REPO_ROOT,
        env=env,
        text=True,
        stdout=open(tmp_path / 'stdout.txt', 'w'),
        stderr=subprocess.STDOUT,
        # a signal the parent ignores (a background job) would stay ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _signal_when(proc, marker, signum, tmp_path):
    deadline = time.time() + 240
    while not marker.exists():
        assert proc.poll() is None, (tmp_path / 'stdout.txt').read_text()[-3000:]
        assert time.time() < deadline, 'the run did not reach the pause'
        time.sleep(0.2)
    proc.send_signal(signum)
    proc.wait(timeout=60)
    return (tmp_path / 'stdout.txt').read_text()


def _untrained_checkpoint(path):
    from mmpretrain.registry import MODELS

    import nofrost_mm  # noqa: F401

    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(DEMO).model)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return path


def test_sigterm_during_a_robust_evaluation_says_what_was_saved_and_how_to_resume(tmp_path):
    """It exited 143 without a word (the --resume hint only in the start-up log)."""
    marker = tmp_path / 'paused'
    config = write_config(
        tmp_path / 'pausing.py',
        body=(
            f"custom_hooks = [dict(type='PauseAtTestIterHook', at_batch=1, marker='{marker}')]\n"
        ),
    )
    checkpoint = _untrained_checkpoint(tmp_path / 'untrained.pth')
    work = tmp_path / 'eval'
    args = [
        'tools/test.py',
        config,
        checkpoint,
        '--work-dir',
        work,
        '--num-samples',
        '32',
        '--attacks',
        'FGSM',
        '--cfg-options',
        'test_dataloader.batch_size=8',
    ]
    proc = _start(args, tmp_path)
    out = _signal_when(proc, marker, signal.SIGTERM, tmp_path)
    assert proc.returncode == -signal.SIGTERM  # the exit status of a SIGTERM (143 in a shell)
    state = next(work.glob('*/robust_eval_state'))
    # batch 0 was saved; batch 1 is finished only after its hooks
    assert sorted(p.name for p in state.glob('chunk_*.pth')) == ['chunk_000000.pth']
    command = shlex.join([*map(str, args), '--resume'])
    line = (
        f'SIGTERM: robust evaluation stopped; the results of 1 of 4 batches are '
        f'saved in {state}. Resume with `python {command}` (work dir {work}): only '
        'the other batches are attacked.'
    )
    assert line in out, out[-3000:]
    assert out.count('SIGTERM') == 1


def test_sigint_during_training_names_the_last_checkpoint_and_the_resume_command(tmp_path):
    marker = tmp_path / 'paused'
    # 256 samples in batches of 64: iteration 6 is in epoch 2, after epoch_1.pth
    config = write_config(
        tmp_path / 'pausing.py',
        body=(f"custom_hooks = [dict(type='PauseAtIterHook', at_iter=6, marker='{marker}')]\n"),
    )
    work = tmp_path / 'run'
    args = [
        'tools/train.py',
        config,
        '--work-dir',
        work,
        '--cfg-options',
        *SMALL,
        'train_cfg.max_epochs=2',
        'train_cfg.val_interval=5',
    ]
    proc = _start(args, tmp_path)
    out = _signal_when(proc, marker, signal.SIGINT, tmp_path)
    assert proc.returncode == -signal.SIGINT  # 130 in a shell, without a traceback
    command = shlex.join([*map(str, args), '--resume'])
    line = (
        f'SIGINT: training stopped in epoch 2 (iteration 6); the last checkpoint is '
        f'{work / "epoch_1.pth"}. Continue with `python {command}` (work dir {work}).'
    )
    assert line in out, out[-3000:]
    assert 'Traceback' not in out and 'KeyboardInterrupt' not in out


@pytest.mark.parametrize(
    'argv, expected',
    [
        (
            ['tools/train.py', 'a.py', '--work-dir', 'w'],
            '`python tools/train.py a.py --work-dir w --resume`',
        ),
        (
            ['tools/train.py', 'a.py', '--resume', 'w/epoch_3.pth', '--amp'],
            '`python tools/train.py a.py --resume --amp`',
        ),
        (
            ['tools/test.py', 'a.py', 'b.pth', '--resume=x'],
            '`python tools/test.py a.py b.pth --resume`',
        ),
        (
            ['tools/train.py', 'a.py', '--launcher', 'pytorch'],
            'the same launch command with --resume added',
        ),
    ],
)
def test_the_resume_command_continues_from_the_newest_state(argv, expected, monkeypatch):
    from nofrost_mm.engine.runner.stop_signals import resume_command

    monkeypatch.setattr(sys, 'argv', argv)
    assert resume_command() == expected


@pytest.mark.parametrize(
    'value',
    [
        "{'type': 'PGD', 'eps': 8}",  # readable: double quotes
        "it's $HOME",  # expands inside double quotes: shlex's quoting
        'a "b" \'c\'',
        'plain',
    ],
)
def test_the_resume_command_reads_back_as_the_same_arguments(value, monkeypatch):
    """What a shell makes of the printed command is the argv it ran."""
    from nofrost_mm.engine.runner.stop_signals import resume_command

    argv = ['tools/test.py', 'c.py', 'x.pth', '--attacks', value]
    monkeypatch.setattr(sys, 'argv', argv)
    command = resume_command().strip('`')
    # bash expands what a shell would ($HOME, quotes); printf shows the words
    words = subprocess.run(
        ['bash', '-c', "printf '%s\\0' " + command],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split('\0')[:-1]
    assert words == ['python', *argv, '--resume']
    assert shlex.split(command) == words
    if value.startswith('{'):
        assert f'"{value}"' in command


def test_a_handler_set_before_is_called_and_an_ignored_signal_stays_ignored():
    """A cluster's requeue handler keeps deciding what a SIGTERM does."""
    from nofrost_mm.engine.runner.stop_signals import stop_signals

    received, logged = [], []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        requeue = signal.getsignal(signal.SIGTERM)
        with stop_signals(lambda name: f'{name}: stopped', logged.append):
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)  # the handler runs between bytecodes
        assert logged == ['SIGTERM: stopped'] and received == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is requeue
    finally:
        signal.signal(signal.SIGTERM, before)
        signal.signal(signal.SIGINT, ignored)
