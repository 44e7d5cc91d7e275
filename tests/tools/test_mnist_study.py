"""tools/mnist_study.py end to end at a minimal size, and resumed; which
rows evaluate on which images."""

import json
import os.path as osp
import sys

import pytest

from tests.conftest import REPO_ROOT, run_tool
from tests.datasets.fake_mnist import write_fake_mnist
from tests.tools.user_path_runs import tool_module

METHOD = 'FGSM-RS (Wong et al. net and recipe)'


def test_quick_study_writes_the_table_and_resumes(tmp_path, monkeypatch, capsys):
    data_root = tmp_path / 'mnist'
    write_fake_mnist(data_root, 300, 40)
    work_dir = tmp_path / 'study'
    args = [
        'tools/mnist_study.py',
        '--quick',
        '--no-autoattack',
        '--methods',
        METHOD,
        '--data-root',
        data_root,
        '--work-dir',
        work_dir,
    ]
    out = run_tool(args, timeout=600).stdout
    assert (
        '| method | test images | seeds | clean (%) | PGD-50x10 (%) | AutoAttack (%) '
        '| worst case (%) | AutoAttack per seed (%) | train time (s) |'
    ) in out
    # the published rows stand beside ours
    assert '| Wong et al. 2020 (FGSM-RS), published | 10000 | - | 98.50 | - | 82.93 |' in out
    summary = json.loads((work_dir / 'summary.json').read_text())
    (run,) = summary['rows'][METHOD]
    metrics = run['metrics']
    assert run['num_samples'] == 20 and run['train_seconds'] > 0
    assert (
        0
        <= metrics['robust/PGD-50x10']
        <= metrics['robust/PGD-50']
        <= metrics['robust/clean']
        <= 100
    )
    assert (work_dir / 'table.md').read_text().strip() == summary['table']
    # run again (its main in this process): nothing is trained or evaluated
    # again, the same table
    monkeypatch.chdir(REPO_ROOT)
    capsys.readouterr()
    tool_module('tools/mnist_study.py', 'mnist_study_tool').main([str(a) for a in args[1:]])
    again = capsys.readouterr().out
    assert 'Epoch(' not in again and 'robust/' not in again
    assert summary['table'] in again
    assert json.loads((work_dir / 'summary.json').read_text())['table'] == summary['table']


def test_unknown_method_fails_before_any_work(tmp_path, capsys):
    # its main in this process (the quick study above is the subprocess)
    study = tool_module('tools/mnist_study.py', 'mnist_study_tool')
    with pytest.raises(SystemExit) as info:
        study.main(['--methods', 'FGSM', '--work-dir', str(tmp_path)])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert "--methods ['FGSM']: allowed" in err and METHOD in err
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def study_without_work(monkeypatch):
    """tools/mnist_study.py with training and evaluation replaced by records
    of what was asked: (run folder, test images; None = the full test set)."""
    monkeypatch.syspath_prepend(str(REPO_ROOT / 'tools'))
    monkeypatch.delitem(sys.modules, 'mnist_study', raising=False)
    import mnist_study

    asked = []

    def train(config, work_dir, seed, quick, data_root=None):
        return dict(checkpoint=osp.join(work_dir, 'epoch_10.pth'), seconds=100.0 + seed)

    def evaluate(config, checkpoint, work_dir, num_samples, no_autoattack, data_root=None):
        asked.append((osp.basename(work_dir), num_samples))
        return {
            'robust/num_samples': num_samples or 10000,
            'robust/clean': 98.0,
            'robust/PGD-50x10': 88.0,
            'robust/AutoAttack': 80.0 + len(asked),
            'robust/worst_case': 80.0,
        }

    monkeypatch.setattr(mnist_study, 'train', train)
    monkeypatch.setattr(mnist_study, 'evaluate', evaluate)
    return mnist_study, asked


def test_every_seed_on_the_subset_and_the_first_on_the_full_test_set(study_without_work, tmp_path):
    study, asked = study_without_work
    study.main(
        ['--methods', METHOD, 'FGSM-RS, BN', '--seeds', '0', '1', '--work-dir', str(tmp_path)]
    )
    reproduction = 'fgsm-rs-wong-et-al-net-and-recipe'
    assert asked == [
        (f'{reproduction}_seed0', 1000),
        (f'{reproduction}_seed0', None),
        (f'{reproduction}_seed1', 1000),
        ('fgsm-rs-bn_seed0', 1000),
        ('fgsm-rs-bn_seed1', 1000),
    ]
    summary = json.loads((tmp_path / 'summary.json').read_text())
    full = METHOD + ', full test set'
    assert list(summary['rows']) == [full, METHOD, 'FGSM-RS, BN']
    assert [(r['seed'], r['num_samples']) for r in summary['rows'][full]] == [(0, 10000)]
    assert [(r['seed'], r['num_samples']) for r in summary['rows'][METHOD]] == [
        (0, 1000),
        (1, 1000),
    ]
    lines = summary['table'].splitlines()
    assert f'| {full} | 10000 | 1 | 98.00 [97.7, 98.3] |' in '\n'.join(lines)
    # two seeds: mean and std of the two AutoAttack values (81 and 83)
    (row,) = [line for line in lines if line.startswith(f'| {METHOD} | 1000 | 2 |')]
    assert '| 82.00 ± 1.41 |' in row
    # and each seed's value, in the seeds' order; one seed has no such column
    assert row.endswith('| 81.0 / 83.0 | 100 |')
    assert lines[-1].startswith('| FGSM-RS, BN | 1000 | 2 |')
    assert f'| {full} | 10000 | 1 |' in lines[-3] and lines[-3].endswith('| - | 100 |')
    # the same numbers, labeled, in summary.json; one seed has no std
    stats = summary['stats'][METHOD]['robust/AutoAttack']
    assert stats['mean'] == 82.0 and stats['n_seeds'] == 2 and stats['per_seed'] == [81.0, 83.0]
    assert abs(stats['std'] - 2**0.5) < 1e-9
    assert summary['stats'][full]['robust/AutoAttack'] == dict(
        mean=82.0, std=None, n_seeds=1, per_seed=[82.0]
    )
    assert summary['stats'][METHOD]['train_seconds']['per_seed'] == [100.0, 101.0]


def test_subset_only_and_full_test_seeds_zero_skip_the_full_test_set(study_without_work, tmp_path):
    study, asked = study_without_work
    study.main(['--methods', METHOD, '--subset-only', '--work-dir', str(tmp_path / 'a')])
    study.main(
        [
            '--methods',
            METHOD,
            '--full-test-seeds',
            '0',
            '--num-samples',
            '500',
            '--work-dir',
            str(tmp_path / 'b'),
        ]
    )
    assert [n for _, n in asked] == [1000, 500]
