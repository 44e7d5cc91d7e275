"""benchmarks/train_wall_time.py at a tiny size: both runs, ratios, JSON (no timing asserted)."""

import json

import pytest

from tests.conftest import run_tool
from tests.tools.user_path_runs import tool_module

TINY = [
    'train_cfg.max_epochs=1',
    'train_dataloader.dataset.indices=64',
    'val_dataloader.dataset.indices=32',
]


def test_tiny_pair_reports_wall_and_iteration_ratios(tmp_path):
    out = tmp_path / 'wall.json'
    pair_args = [
        '--pair',
        'configs/demo/resnet18-w16_1xb64_digits.py',
        'configs/demo/resnet18-w16_1xb64_digits_nfgsm.py',
        '--rounds',
        '1',
        '--work-dir',
        str(tmp_path / 'runs'),
    ]
    proc = run_tool(
        ['benchmarks/train_wall_time.py', *pair_args, '--json', out, '--cfg-options', *TINY]
    )
    assert '| resnet18-w16_1xb64_digits | resnet18-w16_1xb64_digits_nfgsm |' in proc.stdout
    (pair,) = json.loads(out.read_text())['pairs']
    for side in ('baseline_runs', 'candidate_runs'):
        (run,) = pair[side]
        assert 0 < run['iterations'] < run['wall']
        # start-up ends when training starts: before the iterations, inside the run
        assert 0 < run['startup'] < run['wall']
        assert run['training'] == run['wall'] - run['startup'] > run['iterations']
    assert pair['wall_ratio'] == pair['wall_ratios'][0] > 0
    (base,) = pair['baseline_runs']
    (cand,) = pair['candidate_runs']
    assert (
        pair['training_ratio'] == pair['training_ratios'][0] == cand['training'] / base['training']
    )
    # the verdict against the target follows the median training ratio
    assert pair['target'] == 0.5
    assert pair['met'] == (pair['training_ratio'] <= 0.5)
    assert f"training ratio {pair['training_ratio']:.3f}" in proc.stdout
    # both runs trained in their own folder, kept with --work-dir
    assert sorted(p.name for p in (tmp_path / 'runs').iterdir()) == [
        'resnet18-w16_1xb64_digits_nfgsm_round0',
        'resnet18-w16_1xb64_digits_round0',
    ]
    # an existing run folder is never overwritten (its main in this process:
    # refused before any training)
    tool = tool_module('benchmarks/train_wall_time.py', 'train_wall_time_tool')
    before = sorted(p.name for p in (tmp_path / 'runs').rglob('*'))
    with pytest.raises(SystemExit, match='exists; give an empty folder'):
        tool.main([*pair_args, '--cfg-options', *TINY])
    assert sorted(p.name for p in (tmp_path / 'runs').rglob('*')) == before
