"""tools/dist_train.sh and dist_test.sh as two "nodes" of one process each on one machine
(NNODES=2, NODE_RANK=0/1, MASTER_ADDR=127.0.0.1, gloo): the numbers of one node with the
same total batch, and a test whose second node is late by more than the process-group
timeout still ends with them."""

import json

import torch

import nofrost_mm  # noqa: F401
from tests.conftest import free_port
from tests.reliability.helpers import finish_tools, run_meanwhile, start_tool, write_config
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


def _two_nodes(tool, args, env=None):
    """``tools/<tool>`` started as node 0 and node 1 (one process each)."""
    port = str(free_port())
    return [
        start_tool(
            ['bash', f'tools/{tool}', *args],
            dict(env or {}, NNODES='2', NODE_RANK=str(node), MASTER_ADDR='127.0.0.1', PORT=port),
        )
        for node in (0, 1)
    ]


def test_two_nodes_give_the_numbers_of_one(tmp_path, monkeypatch):
    config = write_config(tmp_path / 'cfg.py', base=PGDAT, body=SLOW_BODY)
    # training: two nodes of one process x 16, and meanwhile one process
    # with batch 32 (side by side: they share nothing but the config)
    nodes = _two_nodes(
        'dist_train.sh',
        [config, 1, '--work-dir', tmp_path / 'two', *TRAIN, 'train_dataloader.batch_size=16'],
    )
    run_meanwhile(
        nodes,
        monkeypatch,
        'train.py',
        [config, '--work-dir', tmp_path / 'one', *TRAIN, 'train_dataloader.batch_size=32'],
    )
    logs = finish_tools(nodes)
    assert 'Epoch(train) [1][2/2]' in logs[0]  # 64 / (2 x 16): the 2 steps of 32
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
    nodes = _two_nodes(
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
    )
    run_meanwhile(
        nodes,
        monkeypatch,
        'test.py',
        [
            config,
            checkpoint,
            '--work-dir',
            tmp_path / 'test1',
            '--out',
            tmp_path / 'one.json',
            *TEST,
        ],
    )
    finish_tools(nodes)
    one = json.loads((tmp_path / 'one.json').read_text())
    two = json.loads((tmp_path / 'two.json').read_text())
    assert robust_results(two) == robust_results(one) and robust_results(one)
