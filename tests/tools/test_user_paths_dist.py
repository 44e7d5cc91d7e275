"""tools/dist_test.sh and tools/dist_train.sh with two ranks (gloo on CPU) on
the config families users have: the cells of the matrix in test_user_paths.py."""

import json
import re

import pytest
import torch

import nofrost_mm  # noqa: F401  (allow-lists the checkpoints' RNG states for torch.load)
from tests.conftest import free_port, run_tool
from tests.tools.user_path_runs import (  # noqa: F401
    GUARD_CHECK,
    TEST_ARGS,
    one_process,
    robust_results,
    trained,
    user_path_folder,
)


@pytest.mark.parametrize('family', ['pgd-at', 'single-step', 'nf', 'stock'])
def test_dist_test(trained, one_process, family, tmp_path):
    r = trained(family)
    proc = run_tool(
        [
            'bash',
            'tools/dist_test.sh',
            r.config,
            r.checkpoint,
            2,
            '--work-dir',
            tmp_path,
            '--out',
            tmp_path / 'two.json',
            *TEST_ARGS,
        ],
        env={'PORT': str(free_port())},
    )
    two = json.loads((tmp_path / 'two.json').read_text())
    # the seeded subset and the numbers do not depend on the number of processes
    assert robust_results(two) == robust_results(one_process(family)[0])
    assert 'Distributed launcher: pytorch' in proc.stdout + proc.stderr


# --- dist_train.sh --------------------------------------------------------------------------

# every rank writes its final weights (tests/engine/runner/dump_rank_weights.py)
DUMP_WEIGHTS = """_base_ = ['{base}']
custom_imports = dict(imports=['nofrost_mm', 'tests.engine.runner.dump_rank_weights'],
                      allow_failed_imports=False)
custom_hooks = [*_base_.custom_hooks, dict(type='DumpRankWeightsHook')]
"""


@pytest.mark.parametrize('family', ['single-step', 'stock'])
def test_dist_train(trained, family, tmp_path):
    r = trained(family)
    config = tmp_path / f'{r.config.stem}_dump.py'
    config.write_text(DUMP_WEIGHTS.format(base=r.config))
    work_dir = tmp_path / 'two'
    proc = run_tool(
        [
            'bash',
            'tools/dist_train.sh',
            config,
            2,
            '--work-dir',
            work_dir,
            '--cfg-options',
            *r.family.train_options,
        ],
        env={'PORT': str(free_port())},
    )
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log
    # the two batches of 16 of the one-process run, one on each rank
    assert 'Epoch(train) [1][2/2]' in r.log and 'Epoch(train) [1][1/1]' in log
    assert re.search(r'robust_accuracy/top1: \d', log)
    if family == 'single-step':  # the guard's numbers, summed over the ranks
        assert re.search(GUARD_CHECK, log)
    rank0, rank1 = (torch.load(work_dir / f'rank{i}_weights.pth') for i in (0, 1))
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    assert (work_dir / 'epoch_1.pth').is_file()
