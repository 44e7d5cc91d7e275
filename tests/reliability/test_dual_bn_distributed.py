"""Dual-BN AT on 2 gloo processes == one process accumulating their two batches."""

import torch

import nofrost_mm  # noqa: F401
from tests.conftest import REPO_ROOT
from tests.reliability.helpers import (
    finish_tools,
    free_port,
    run_meanwhile,
    start_tool,
    write_config,
)

DUALBN = REPO_ROOT / 'configs/dualbn/resnet18-w16-dualbn_1xb64_digits_pgdat.py'
# BN batch statistics are per batch: each rank's batch of 16 must be a batch
# of the one-process run, so that run takes rank 0's first batch, rank 1's
# first, rank 0's second, ... (no shuffle; DefaultSampler gives rank r the
# positions r, r + 2, ...) and accumulates two of them per step (the mean of
# two gradients, as DDP's all-reduce). The attack runs in train mode (batch
# statistics): in eval mode it would read running statistics, which differ
# legitimately (each rank's see only its own batches). A constant lr: an
# iteration-based warm-up would count 4 iterations against 2. Every source of
# per-rank randomness is off, as in test_distributed.py.
BODY = """
custom_hooks = [*_base_.custom_hooks, dict(type='DumpWeightsHook')]
data_preprocessor = dict(attack=dict(random_start=False, step_size=0.5),
                         attack_model_mode='train')
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=1)]
train_dataloader = dict(batch_size=16, sampler=dict(shuffle=False),
                        dataset=dict(pipeline=[dict(type='PackInputs')], indices={indices}))
"""
# two steps of 2 x 16 images; float noise as in test_distributed.py (PGD's
# sign() flips of last-bit differences, kept small by the small step)
PARITY_RTOL = 0.05


def test_two_processes_match_one_process_accumulating_their_batches(tmp_path, monkeypatch):
    positions = range(64)
    one_order = [
        i for start in (0, 32) for rank in (0, 1) for i in positions[start + rank : start + 32 : 2]
    ]
    one = write_config(tmp_path / 'one.py', base=DUALBN, body=BODY.format(indices=one_order))
    two = write_config(tmp_path / 'two.py', base=DUALBN, body=BODY.format(indices=list(positions)))
    common = [
        '--no-validate',
        '--cfg-options',
        'train_cfg.max_epochs=1',
        'custom_hooks.0.eps_warmup=0',
    ]
    # the two processes and, meanwhile in this one, the accumulating process
    procs = [
        start_tool(
            ['bash', 'tools/dist_train.sh', two, '2', '--work-dir', tmp_path / 'two', *common],
            env={'PORT': str(free_port())},
        )
    ]
    run_meanwhile(
        procs,
        monkeypatch,
        'train.py',
        [one, '--work-dir', tmp_path / 'one', *common, 'optim_wrapper.accumulative_counts=2'],
    )
    (log,) = finish_tools(procs)
    assert 'Epoch(train) [1][2/2]' in log
    (one_log,) = (tmp_path / 'one').glob('*/*.log')
    assert 'Epoch(train) [1][4/4]' in one_log.read_text()
    single = torch.load(tmp_path / 'one' / 'rank0_weights.pth')
    ranks = [torch.load(tmp_path / 'two' / f'rank{r}_weights.pth') for r in (0, 1)]
    init = torch.load(tmp_path / 'one' / 'rank0_init.pth')
    assert single.keys() == ranks[0].keys() == ranks[1].keys()
    for key in single:
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    # both branches trained: the weights moved in both halves
    stem = 'backbone.bn1.weight'
    c = single[stem].numel() // 2
    for half in (slice(None, c), slice(c, None)):
        assert not torch.equal(single[stem][half], init[stem][half])
    diff = max((single[k] - ranks[0][k]).abs().max().item() for k in single)
    moved = max((single[k] - init[k]).abs().max().item() for k in single)
    print(f'max |w(1 process) - w(2 processes)| = {diff:.3g}; max |update| = {moved:.3g}')
    assert diff <= PARITY_RTOL * moved, (diff, moved)
