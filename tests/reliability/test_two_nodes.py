"""tools/dist_train.sh and dist_test.sh as two "nodes" of one process each on one machine
(NNODES=2, NODE_RANK=0/1, MASTER_ADDR=127.0.0.1, gloo): the numbers of one node with the
same total batch, and a test whose second node is late by more than the process-group
timeout still ends with them."""

import json
import os
import subprocess
import tempfile

import torch

import nofrost_mm  # noqa: F401
from tests.conftest import REPO_ROOT, free_port
from tests.reliability.helpers import write_config
from tests.reliability.test_distributed import PARITY_BODY, PARITY_RTOL, PGDAT
from tests.tools.user_path_runs import robust_results

TIMEOUT_S = 10  # the process-group timeout of the test runs
LATE_S = 14  # how late node 1's rank starts its test batches
HOOKS = "custom_hooks = [*_base_.custom_hooks, dict(type='DumpWeightsHook')]"
assert HOOKS in PARITY_BODY
# rank 1 sleeps before its first test batch (a no-op in one process)
SLOW_BODY = (
    PARITY_BODY.replace(
        HOOKS,
        HOOKS[:-1]
        + f""",
                dict(type='SlowTestRankHook', rank=1, seconds={LATE_S})]""",
    )
    + """
custom_imports = dict(imports=['nofrost_mm', 'tests.reliability.helpers',
                               'tests.reliability.slow_rank'], allow_failed_imports=False)
"""
)
TRAIN = [
    '--no-validate',
    '--cfg-options',
    'train_cfg.max_epochs=1',
    'train_dataloader.dataset.indices=64',
    'custom_hooks.0.eps_warmup=0',
]
TEST = ['--num-samples', '8', '--attacks', "{'type': 'PGDAttack', 'steps': 2}", 'FGSM']


def _start(args, env=None):
    """``args`` (a tool's command line) started in the background."""
    args = [str(a) for a in args]
    if args[0].endswith('.py'):
        args = [os.sys.executable, *args]
    # a file, not a pipe: a process is never blocked on a full pipe while
    # another one's log is read
    log = tempfile.TemporaryFile('w+')
    proc = subprocess.Popen(
        args,
        cwd=REPO_ROOT,
        text=True,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHON=os.sys.executable, **(env or {})),
    )
    proc.log = log
    return proc


def _two_nodes(tool, args, env=None):
    """``tools/<tool>`` started as node 0 and node 1 (one process each)."""
    port = str(free_port())
    return [
        _start(
            ['bash', f'tools/{tool}', *args],
            dict(env or {}, NNODES='2', NODE_RANK=str(node), MASTER_ADDR='127.0.0.1', PORT=port),
        )
        for node in (0, 1)
    ]


def _finish(procs, timeout=600):
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


def test_two_nodes_give_the_numbers_of_one(tmp_path):
    config = write_config(tmp_path / 'cfg.py', base=PGDAT, body=SLOW_BODY)
    # training: one node, one process, batch 32; two nodes of one process x 16
    # (side by side: they share nothing but the config)
    logs = _finish(
        [
            _start(
                [
                    'tools/train.py',
                    config,
                    '--work-dir',
                    tmp_path / 'one',
                    *TRAIN,
                    'train_dataloader.batch_size=32',
                ]
            ),
            *_two_nodes(
                'dist_train.sh',
                [
                    config,
                    1,
                    '--work-dir',
                    tmp_path / 'two',
                    *TRAIN,
                    'train_dataloader.batch_size=16',
                ],
            ),
        ]
    )
    assert 'Epoch(train) [1][2/2]' in logs[1]  # 64 / (2 x 16): the 2 steps of 32
    one = torch.load(tmp_path / 'one' / 'rank0_weights.pth')
    two = [torch.load(tmp_path / 'two' / f'rank{r}_weights.pth') for r in (0, 1)]
    for key in one:
        assert torch.equal(two[0][key], two[1][key]), key
    init = torch.load(tmp_path / 'one' / 'rank0_init.pth')
    moved = max((one[k] - init[k]).abs().max().item() for k in one)
    diff = max((one[k] - two[0][k]).abs().max().item() for k in one)
    assert diff <= PARITY_RTOL * moved, (diff, moved)  # see test_distributed.py

    # test: node 1's rank starts its batches LATE_S after node 0's, which
    # then waits longer than the process-group timeout before the gather;
    # the one-process reference runs meanwhile
    checkpoint = tmp_path / 'two' / 'epoch_1.pth'
    _finish(
        [
            _start(
                [
                    'tools/test.py',
                    config,
                    checkpoint,
                    '--work-dir',
                    tmp_path / 'test1',
                    '--out',
                    tmp_path / 'one.json',
                    *TEST,
                ]
            ),
            *_two_nodes(
                'dist_test.sh',
                [
                    config,
                    checkpoint,
                    1,
                    '--work-dir',
                    tmp_path / 'test2',
                    '--out',
                    tmp_path / 'two.json',
                    *TEST,
                    '--cfg-options',
                    f'env_cfg.dist_cfg.timeout={TIMEOUT_S}',
                ],
            ),
        ]
    )
    one = json.loads((tmp_path / 'one.json').read_text())
    two = json.loads((tmp_path / 'two.json').read_text())
    assert robust_results(two) == robust_results(one) and robust_results(one)
