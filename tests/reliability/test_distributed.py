"""2 CPU processes x batch B == 1 process x batch 2B; a dead or hung rank ends the run."""

import json
import os
import subprocess
import sys
import time

import torch

import nofrost_mm  # noqa: F401
from tests.conftest import REPO_ROOT, run_tool
from tests.reliability.helpers import (
    DEMO,
    finish_tools,
    free_port,
    run_meanwhile,
    start_tool,
    write_config,
)

PGDAT = REPO_ROOT / 'configs/demo/nf-resnet18-w16_1xb64_digits_pgdat.py'
# Normalizer-free AT with every source of per-rank randomness off: no random
# crop, no dropout, PGD without random start. Batch statistics (BN) would
# differ between 2B and 2 x B legitimately; this model has none. PGD's sign()
# turns last-bit differences of the batch-16 and batch-32 kernels into
# flipped pixels, each moving the input by 2 x step_size: a small step keeps
# that float noise far below the tolerance on every float path while the
# attack still runs on each rank.
PARITY_BODY = """
custom_hooks = [*_base_.custom_hooks, dict(type='DumpWeightsHook')]
model = dict(head=dict(dropout_rate=0.))
data_preprocessor = dict(attack=dict(random_start=False, step_size=0.5))
train_dataloader = dict(dataset=dict(pipeline=[dict(type='PackInputs')]))
"""
# Tolerance: 5% of the largest weight change the 4 steps make. A real bug
# (gradients summed instead of averaged, a rank on other data) is of the size
# of the update itself; float noise with step 0.5/255 was 3e-8 (ATen default,
# oneDNN SSE41) to 6e-5 (AVX-512, 1 or 2 threads) absolute, at most 0.25% of the
# update (0.024). With the default step (about 16/255) it reached 2% (AVX-512, 2
# threads).
PARITY_RTOL = 0.05


def test_two_processes_match_one_process_with_double_batch(tmp_path, monkeypatch):
    config = write_config(tmp_path / 'cfg.py', base=PGDAT, body=PARITY_BODY)
    common = [
        '--no-validate',
        '--cfg-options',
        'train_cfg.max_epochs=1',
        'train_dataloader.dataset.indices=128',
        'custom_hooks.0.eps_warmup=0',
    ]
    # two processes x 16 and, meanwhile in this one, one process x 32
    two = start_tool(
        [
            'bash',
            'tools/dist_train.sh',
            config,
            '2',
            '--work-dir',
            tmp_path / 'two',
            *common,
            'train_dataloader.batch_size=16',
        ],
        env={'PORT': str(free_port())},
    )
    run_meanwhile(
        [two],
        monkeypatch,
        'train.py',
        [config, '--work-dir', tmp_path / 'one', *common, 'train_dataloader.batch_size=32'],
    )
    (log,) = finish_tools([two])
    assert 'Epoch(train) [1][4/4]' in log  # 128 / (2 x 16): four steps, as with 32
    one = torch.load(tmp_path / 'one' / 'rank0_weights.pth')
    two = [torch.load(tmp_path / 'two' / f'rank{r}_weights.pth') for r in (0, 1)]
    assert one.keys() == two[0].keys() == two[1].keys()
    for key in one:
        assert torch.equal(two[0][key], two[1][key]), key
    diff = max((one[k] - two[0][k]).abs().max().item() for k in one)
    # how far training moved the weights: the size a real mismatch would have
    init = torch.load(tmp_path / 'one' / 'rank0_init.pth')
    moved = max((one[k] - init[k]).abs().max().item() for k in one)
    print(f'max |w(1 x 32) - w(2 x 16)| = {diff:.3g}; max |update| = {moved:.3g}')
    assert diff <= PARITY_RTOL * moved, (diff, moved)


def _launch_two_ranks(config, work_dir, timeout_s):
    """Two ranks started directly (no torchrun to kill the survivor for us)."""
    port = str(free_port())
    procs = []
    for rank in (0, 1):
        env = dict(
            os.environ,
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE='2',
            MASTER_ADDR='127.0.0.1',
            MASTER_PORT=port,
            PYTHONPATH=str(REPO_ROOT),
        )
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    'tools/train.py',
                    str(config),
                    '--launcher',
                    'pytorch',
                    '--work-dir',
                    str(work_dir),
                    '--no-validate',
                    '--cfg-options',
                    'train_dataloader.dataset.indices=256',
                    'train_dataloader.batch_size=32',
                    f'env_cfg.dist_cfg.timeout={timeout_s}',
                ],
                cwd=REPO_ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
        )
    return procs


def _survivor_error(procs, limit_s):
    start = time.time()
    try:
        _, err = procs[0].communicate(timeout=limit_s)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    return procs[0].returncode, err, time.time() - start


def test_dead_rank_makes_the_other_exit_with_a_clear_error(tmp_path):
    config = write_config(
        tmp_path / 'cfg.py',
        body=("custom_hooks = [dict(type='DieAtIterHook', rank=1, at_iter=3)]\n"),
    )
    procs = _launch_two_ranks(config, tmp_path / 'run', timeout_s=60)
    rc, err, _ = _survivor_error(procs, limit_s=180)
    assert procs[1].returncode == -9
    assert rc != 0
    assert (
        'rank 0/2: a collective operation failed in epoch 1, iteration 3: '
        'another rank died or did not answer within '
        'env_cfg.dist_cfg.timeout=60 s'
    ) in err


def test_hung_rank_times_out_after_the_configured_timeout(tmp_path):
    config = write_config(
        tmp_path / 'cfg.py',
        body=("custom_hooks = [dict(type='HangAtIterHook', rank=1, at_iter=3)]\n"),
    )
    procs = _launch_two_ranks(config, tmp_path / 'run', timeout_s=5)
    rc, err, _ = _survivor_error(procs, limit_s=180)
    assert rc != 0
    assert 'env_cfg.dist_cfg.timeout=5 s' in err
    assert 'Timed out waiting 5000ms' in err  # gloo's own words, kept in the message


def _untrained_checkpoint(path):
    """The demo model's initial weights as a checkpoint (no training)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    init_default_scope('mmpretrain')
    torch.save({'state_dict': MODELS.build(Config.fromfile(DEMO).model).state_dict()}, path)
    return path


def test_dist_test_of_two_ranks_exits_zero_after_writing_results(tmp_path):
    """The success path of the final barrier and os._exit(0): exit code 0,
    the merged results of both ranks written (the soak loop's fast case)."""
    checkpoint = _untrained_checkpoint(tmp_path / 'init.pth')
    config = write_config(tmp_path / 'ok.py')
    proc = run_tool(
        [
            'bash',
            'tools/dist_test.sh',
            config,
            checkpoint,
            2,
            '--work-dir',
            tmp_path / 'ok',
            '--out',
            tmp_path / 'ok.json',
            '--cfg-options',
            'test_dataloader.dataset.indices=40',
        ],
        env={'PORT': str(free_port())},
    )
    assert proc.returncode == 0
    results = json.loads((tmp_path / 'ok.json').read_text())
    assert 0 <= results['accuracy/top1'] <= 100
    assert 'Epoch(test) [' in proc.stdout + proc.stderr


def test_a_failing_rank_fails_the_dist_test_command(tmp_path):
    """Ranks end with os._exit(0) after a final barrier (no gloo teardown
    abort), reached only on success: a rank that raises fails the command."""
    checkpoint = _untrained_checkpoint(tmp_path / 'init.pth')
    config = write_config(
        tmp_path / 'fail.py', body=("custom_hooks = [dict(type='FailAfterTestHook', rank=1)]\n")
    )
    failed = run_tool(
        [
            'bash',
            'tools/dist_test.sh',
            config,
            checkpoint,
            2,
            '--work-dir',
            tmp_path / 'fail',
            '--cfg-options',
            'test_dataloader.dataset.indices=40',
        ],
        env={'PORT': str(free_port())},
        check=False,
    )
    assert failed.returncode != 0
    assert 'FailAfterTestHook: rank 1 fails on purpose' in failed.stdout + failed.stderr
