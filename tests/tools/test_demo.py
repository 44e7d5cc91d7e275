"""`make demo`'s pipeline at a minimal size: train, attack, table, summary files."""

import importlib.util
import json
import sys

import pytest

from tests.conftest import REPO_ROOT, run_tool


@pytest.fixture(scope='module')
def demo():
    spec = importlib.util.spec_from_file_location('demo_tool', REPO_ROOT / 'tools/demo.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_quick_run_writes_table_and_summary(tmp_path):
    work_dir = tmp_path / 'demo'
    proc = run_tool(['tools/demo.py', '--quick', '--work-dir', work_dir], timeout=900)
    out = proc.stdout
    assert (
        '| method | eps (/255) | clean acc (%) | PGD-20 acc (%) '
        '| AutoAttack acc (%) | worst case (%) | train time (s) |'
    ) in out
    for name in ('Standard (BN)', 'BN-AT', 'NoFrost (NF-AT)'):
        assert f'| {name} |' in out
    summary = json.loads((work_dir / 'summary.json').read_text())
    assert (work_dir / 'summary.png').stat().st_size > 10_000
    for name, result in summary['methods'].items():
        # labeled statistics; one seed: no spread to report
        for key in ('clean', 'pgd20', 'autoattack', 'worst_case', 'train_seconds'):
            assert result[key]['std'] is None and result[key]['n_seeds'] == 1, name
            assert result[key]['per_seed'] == [result[key]['mean']], name
        clean, pgd, autoattack, worst = (
            result[k]['mean'] for k in ('clean', 'pgd20', 'autoattack', 'worst_case')
        )
        # a sample that falls to PGD-20 or is wrong clean cannot survive more
        assert 0 <= autoattack <= clean <= 100, name
        assert pgd <= clean, name
        # --quick attacks the same images with both: the worst case is
        # per sample, so at most the weaker of the two
        assert worst <= min(pgd, autoattack), name
        assert result['eps'] == 32
        assert result['train_seconds']['mean'] > 0
    # every run wrote its checkpoint in its own timestamped folder
    runs = summary['runs']
    assert all(r[0]['checkpoint'].startswith(summary['run_dir']) for r in runs.values())


def test_demo_method_choices_fail_before_any_training(demo, tmp_path, monkeypatch, capsys):
    # the tool's main in this process, as from a shell (its quick run above is
    # the subprocess): the refusal comes from the command line alone
    def refused(*argv):
        monkeypatch.setattr(sys, 'argv', ['tools/demo.py', *map(str, argv)])
        with pytest.raises(SystemExit) as info:
            demo.main()
        assert info.value.code != 0
        return capsys.readouterr().err

    err = refused('--methods', 'BN-AT', 'NF-ATT', '--work-dir', tmp_path)
    # names the wrong one and every allowed one, the recipe-study methods too
    assert "--methods ['NF-ATT']: allowed" in err
    for name in ('NoFrost (NF-AT)', 'BN-AT pure', 'NF-AT pure', 'BN-TRADES', 'NF-TRADES'):
        assert name in err
    err = refused('--study', '--methods', 'BN-AT', '--work-dir', tmp_path)
    assert '--study and --methods are exclusive' in err
    assert not (tmp_path / 'runs').exists()


def test_seed_stats_are_labeled_and_one_seed_has_no_std(demo):
    assert demo.seed_stats([98.0]) == dict(mean=98.0, std=None, n_seeds=1, per_seed=[98.0])
    two = demo.seed_stats([97.0, None, 99.0])  # a run without the number
    assert two['mean'] == 98.0 and two['n_seeds'] == 2 and two['per_seed'] == [97.0, None, 99.0]
    assert abs(two['std'] - 2**0.5) < 1e-12
    assert demo.seed_stats([None]) == dict(mean=None, std=None, n_seeds=0, per_seed=[None])


def test_table_and_plots_read_the_labeled_summary(demo, tmp_path):
    def method(eps, *values):
        stats = demo.seed_stats(list(values))
        return dict(
            eps=eps,
            clean=stats,
            pgd20=stats,
            autoattack=stats,
            worst_case=stats,
            train_seconds=demo.seed_stats([10.0] * len(values)),
        )

    summary = dict(
        seeds=[0, 1],
        methods={
            'BN-AT': method(32, 40.0, 44.0),
            'BN-AT @48': method(48, 6.0, 4.0),
            'NoFrost (NF-AT)': method(32, 22.0, None),
        },
    )
    table = demo.markdown_table(summary)
    assert '| BN-AT | 32 | 42.0 ± 2.8 | 42.0 ± 2.8 |' in table
    # one seed of two has the number: its value, no spread
    assert '| NoFrost (NF-AT) | 32 | 22.0 | 22.0 |' in table
    curves = {
        n: dict(
            iter=[1, 2], loss=[2.0, 1.0], epoch=[1], val_clean=[50.0], val_robust=[float('nan')]
        )
        for n in summary['methods']
    }
    demo.plot(summary, curves, tmp_path / 'summary.png')
    demo.plot_against_eps(summary, tmp_path / 'eps_study.png')
    assert (tmp_path / 'summary.png').stat().st_size > 10_000
    assert (tmp_path / 'eps_study.png').stat().st_size > 10_000
