import contextlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# tiny runs: keep the 2-core machine responsive when tests start subprocesses
os.environ.setdefault('OMP_NUM_THREADS', '1')


@contextlib.contextmanager
def logged_warnings(logger):
    """Collect the messages of the warnings ``logger`` emits inside the block.

    MMLogger does not propagate to the root logger, so pytest's caplog misses them.
    """
    messages = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def run_tool(args, cwd=REPO_ROOT, timeout=300, env=None, check=True):
    """Run a repository command line (``tools/...``) and return the result."""
    full_env = dict(os.environ, PYTHON=sys.executable,
                    PYTHONPATH=str(REPO_ROOT))
    full_env.update(env or {})
    if args[0].endswith('.py'):
        args = [sys.executable] + list(args)
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f'{" ".join(map(str, args))} exited {proc.returncode}\n'
            f'--- stdout ---\n{proc.stdout[-4000:]}\n'
            f'--- stderr ---\n{proc.stderr[-4000:]}')
    return proc


def free_port():
    """A TCP port free on this machine now (tests run side by side)."""
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def repo_root():
    return REPO_ROOT
