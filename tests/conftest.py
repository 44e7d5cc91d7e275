import contextlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

REPO_ROOT = Path(__file__).resolve().parents[1]
# tiny runs: keep the 2-core machine responsive when tests start subprocesses
os.environ.setdefault('OMP_NUM_THREADS', '1')


# Tests that train or compare float results, whose margins must hold on any
# CPU's float path and thread count: `pytest -m numerics` selects them, and
# tools/misc/portability_check.sh runs them under other CPUs' emulated paths.
NUMERICS = (
    'tests/engine/hooks/test_catastrophic_overfitting_hook.py',
    'tests/attacks/test_pgd.py',
    'tests/attacks/test_pgd_trades.py',
    'tests/attacks/test_single_step.py',
    'tests/attacks/test_mixed_precision.py',
    'tests/attacks/test_torchattacks_adapter.py::test_plugin_pgd_matches_torchattacks_pgd',
    'tests/evaluation/test_robustness_analysis.py',
    'tests/models/data_preprocessors/test_pgd_data_preprocessor.py',
    'tests/models/classifiers/',
    'tests/models/backbones/test_nf_resnet.py::test_parity_with_timm',
    'tests/engine/optim_wrappers/test_agc_optim_wrapper.py',
    'tests/tools/test_signal_propagation.py',
)


# The fast tests that launch tools/dist_train.sh or tools/dist_test.sh with two
# ranks and check their exit code: `pytest -m dist_tools --repeat 50` (what
# tools/misc/dist_soak.sh runs beside a busy process) looks for rare teardown
# failures.
DIST_TOOLS = (
    'tests/engine/runner/test_nofrost_runner.py::test_dist_train_two_cpu_processes_agree',
    'tests/reliability/test_distributed.py::test_dist_test_of_two_ranks_exits_zero',
    'tests/reliability/test_distributed.py::test_a_failing_rank_fails_the_dist_test_command',
)


def pytest_addoption(parser):
    parser.addoption(
        '--repeat',
        type=int,
        default=1,
        metavar='N',
        help='run every selected test N times, round by round '
        '(ids [repeat0] ...); with -x the first failure stops the rounds',
    )


def pytest_generate_tests(metafunc):
    rounds = metafunc.config.getoption('repeat')
    if rounds < 1:
        raise pytest.UsageError(f'--repeat {rounds}: give a number of rounds >= 1')
    if rounds > 1:
        metafunc.fixturenames.append('repeat_round')
        metafunc.parametrize(
            'repeat_round', range(rounds), ids=[f'repeat{i}' for i in range(rounds)]
        )


def _repeat_round(item):
    callspec = getattr(item, 'callspec', None)
    return callspec.params.get('repeat_round', 0) if callspec else 0


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.startswith(NUMERICS):
            item.add_marker(pytest.mark.numerics)
        if item.nodeid.startswith(DIST_TOOLS):
            item.add_marker(pytest.mark.dist_tools)
    if config.getoption('repeat') > 1:
        # round by round: every test once, then every test again
        items.sort(key=_repeat_round)


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
    full_env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=str(REPO_ROOT))
    full_env.update(env or {})
    if args[0].endswith('.py'):
        args = [sys.executable] + list(args)
    proc = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f'{" ".join(map(str, args))} exited {proc.returncode}\n'
            f'--- stdout ---\n{proc.stdout[-4000:]}\n'
            f'--- stderr ---\n{proc.stderr[-4000:]}'
        )
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


STANDARD_DIGITS_CONFIG = 'configs/demo/resnet18-w16_1xb64_digits.py'


@pytest.fixture(scope='session')
def standard_digits_checkpoint(tmp_path_factory, worker_id):
    """``epoch_5.pth`` of the standard demo config trained 5 epochs (tool and
    benchmark tests).

    Trained once per test session: the xdist workers share the base temp
    folder's parent and take turns through a file lock, so the first one
    trains and the others read its file.
    """
    shared = tmp_path_factory.getbasetemp()
    if worker_id != 'master':
        shared = shared.parent
    work_dir = shared / 'standard_digits_5e'
    with FileLock(str(shared / 'standard_digits_5e.lock')):
        checkpoint = work_dir / 'epoch_5.pth'
        if not checkpoint.exists():
            # the cosine schedule ends with the 5 epochs (at epoch 5 of the
            # config's 15 the val accuracy depended on the run: 34-60%)
            run_tool(
                [
                    'tools/train.py',
                    STANDARD_DIGITS_CONFIG,
                    '--work-dir',
                    work_dir,
                    '--cfg-options',
                    'train_cfg.max_epochs=5',
                    'train_cfg.val_interval=5',
                    'param_scheduler.T_max=5',
                ]
            )
    return checkpoint
