"""Test-only hooks and helpers of the reliability suite (loaded via custom_imports)."""

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import zipfile

import torch
from mmengine.dist import barrier
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from tests.conftest import REPO_ROOT, free_port  # noqa: F401 (re-exported)

DEMO = REPO_ROOT / 'configs/demo/resnet18-w16_1xb64_digits.py'
SMALL = ['train_dataloader.dataset.indices=256', 'val_dataloader.dataset.indices=120']


def write_config(path, base=DEMO, body=''):
    """A config in ``path`` on top of ``base`` that also loads these hooks."""
    path.write_text(
        f"_base_ = '{base}'\n"
        "custom_imports = dict(imports=['nofrost_mm', "
        "'tests.reliability.helpers'], allow_failed_imports=False)\n" + body
    )
    return path


# -- tools run side by side ------------------------------------------------------


def start_tool(args, env=None):
    """``args`` (a tool's command line) started in the background."""
    args = [str(a) for a in args]
    if args[0].endswith('.py'):
        args = [sys.executable, *args]
    # a file, not a pipe: a process is never blocked on a full pipe while
    # another one's log is read
    log = tempfile.TemporaryFile('w+')
    proc = subprocess.Popen(
        args,
        cwd=REPO_ROOT,
        text=True,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHON=sys.executable, **(env or {})),
    )
    proc.log = log
    return proc


def finish_tools(procs, timeout=600):
    """The logs of ``procs``, each of which must exit 0."""
    logs = []
    for p in procs:
        p.wait(timeout=timeout)
        p.log.seek(0)
        logs.append(p.log.read())
        p.log.close()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, ' '.join(p.args) + '\n' + log[-4000:]
    return logs


def run_meanwhile(procs, monkeypatch, tool, argv):
    """``tools/<tool>``'s main run in this process while ``procs`` run (one
    more process would spend most of its time importing torch); ``procs``
    are killed if it fails."""
    from tests.tools.user_path_runs import run_main

    try:
        run_main(monkeypatch, f'tools/{tool}', argv)
    except BaseException:
        for p in procs:
            p.kill()
            p.wait()
        raise


DAMAGES = ('flipped', 'random', 'truncated')


def damage(good, out, how):
    """Write a damaged copy of checkpoint ``good`` to ``out``.

    ``flipped``: 2,000 bytes inverted in the middle of the largest member's
    data (torch reads such a file without an error); ``random``: as many
    random bytes; ``truncated``: the first half.
    """
    data = bytearray(good.read_bytes())
    if how == 'flipped':
        with zipfile.ZipFile(good) as archive:
            largest = max(archive.infolist(), key=lambda i: i.file_size)
            assert largest.file_size > 6000, largest
        # the data follows the member's local header (30 bytes + name + extra)
        start = (
            largest.header_offset
            + 30
            + len(largest.filename.encode())
            + int.from_bytes(
                data[largest.header_offset + 28 : largest.header_offset + 30], 'little'
            )
        )
        middle = start + largest.file_size // 2 - 1000
        data[middle : middle + 2000] = bytes(b ^ 0xFF for b in data[middle : middle + 2000])
    elif how == 'random':
        data = random.Random(0).randbytes(len(data))
    else:
        data = data[: len(data) // 2]
    out.write_bytes(bytes(data))
    return out


def expected_problem(path, how):
    """The part of CheckpointLoadError's message that names the damage."""
    if how == 'flipped':
        with zipfile.ZipFile(path) as archive:
            return f"member {archive.testzip()!r} fails its CRC check"
    return 'truncated or corrupted: no valid zip directory'


def unwrap(model):
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class PauseAtIterHook(Hook):
    """Write ``marker`` after iteration ``at_iter`` and wait to be killed."""

    def __init__(self, at_iter, marker):
        self.at_iter, self.marker = at_iter, marker

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at_iter:
            with open(self.marker, 'w') as f:
                f.write(str(runner.iter + 1))
            time.sleep(120)


@HOOKS.register_module()
class PauseAtTestIterHook(Hook):
    """Write ``marker`` after test batch ``at_batch`` (0-based) and wait to be signalled."""

    def __init__(self, at_batch, marker):
        self.at_batch, self.marker = at_batch, marker

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if batch_idx == self.at_batch:
            with open(self.marker, 'w') as f:
                f.write(str(batch_idx))
            time.sleep(120)


@HOOKS.register_module()
class PoisonBatchHook(Hook):
    """Make the loss of the given iterations NaN (the input mean becomes NaN)."""

    # after DivergenceGuardHook's before_train_iter (it snapshots buffers)
    priority = 'LOW'

    def __init__(self, at_iters):
        self.at_iters = set(at_iters)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 in self.at_iters:
            self._mean = unwrap(runner.model).data_preprocessor.mean.clone()
            unwrap(runner.model).data_preprocessor.mean.fill_(float('nan'))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 in self.at_iters:
            unwrap(runner.model).data_preprocessor.mean.copy_(self._mean)


@HOOKS.register_module()
class DieAtIterHook(Hook):
    """SIGKILL this process on rank ``rank`` before iteration ``at_iter``."""

    def __init__(self, rank, at_iter):
        self.rank, self.at_iter = rank, at_iter

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.rank == self.rank and runner.iter + 1 == self.at_iter:
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class DumpWeightsHook(Hook):
    """Every rank writes its parameters: ``rank{r}_init.pth``, ``_weights.pth``."""

    def before_train(self, runner):
        self._dump(runner, 'init')

    def after_train(self, runner):
        self._dump(runner, 'weights')

    @staticmethod
    def _dump(runner, name):
        torch.save(
            {k: p.detach().clone() for k, p in unwrap(runner.model).named_parameters()},
            os.path.join(runner.work_dir, f'rank{runner.rank}_{name}.pth'),
        )


@HOOKS.register_module()
class HangAtIterHook(Hook):
    """Stop answering (sleep) on rank ``rank`` before iteration ``at_iter``."""

    def __init__(self, rank, at_iter):
        self.rank, self.at_iter = rank, at_iter

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.rank == self.rank and runner.iter + 1 == self.at_iter:
            time.sleep(600)


@HOOKS.register_module()
class KillAtTestIterHook(Hook):
    """SIGKILL this process after test batch ``at_batch`` (0-based) is processed."""

    def __init__(self, at_batch):
        self.at_batch = at_batch

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if batch_idx == self.at_batch:
            # every rank dies at the same point: without the barrier the
            # launcher tears a slower rank down before it saved its earlier
            # batches
            barrier()  # a no-op in one process
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class FailAfterTestHook(Hook):
    """Raise on rank ``rank`` once the test loop is done (results gathered)."""

    def __init__(self, rank):
        self.rank = rank

    def after_test(self, runner):
        if runner.rank == self.rank:
            raise RuntimeError(f'FailAfterTestHook: rank {self.rank} fails on purpose')
