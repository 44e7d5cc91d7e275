"""`make demo`'s pipeline at a minimal size: train, attack, table, summary files."""
import json

from tests.conftest import run_tool


def test_demo_quick_run_writes_table_and_summary(tmp_path):
    work_dir = tmp_path / 'demo'
    proc = run_tool(['tools/demo.py', '--quick', '--work-dir', work_dir],
                    timeout=900)
    out = proc.stdout
    assert ('| method | eps (/255) | clean acc (%) | PGD-20 acc (%) '
            '| AutoAttack acc (%) | worst case (%) | train time (s) |') in out
    for name in ('Standard (BN)', 'BN-AT', 'NoFrost (NF-AT)'):
        assert f'| {name} |' in out
    summary = json.loads((work_dir / 'summary.json').read_text())
    assert (work_dir / 'summary.png').stat().st_size > 10_000
    for name, result in summary['methods'].items():
        clean, pgd, autoattack, worst = (
            result[k][0] for k in ('clean', 'pgd20', 'autoattack', 'worst_case'))
        # a sample that falls to PGD-20 or is wrong clean cannot survive more
        assert 0 <= autoattack <= clean <= 100, name
        assert pgd <= clean, name
        # --quick attacks the same images with both: the worst case is
        # per sample, so at most the weaker of the two
        assert worst <= min(pgd, autoattack), name
        assert result['eps'] == 32
        assert result['train_seconds'][0] > 0
    # every run wrote its checkpoint in its own timestamped folder
    runs = summary['runs']
    assert all(r[0]['checkpoint'].startswith(summary['run_dir'])
               for r in runs.values())


def test_demo_method_choices_fail_before_any_training(tmp_path):
    proc = run_tool(['tools/demo.py', '--methods', 'BN-AT', 'NF-ATT', '--work-dir', tmp_path],
                    check=False)
    assert proc.returncode != 0
    # names the wrong one and every allowed one, the recipe-study methods too
    assert "--methods ['NF-ATT']: allowed" in proc.stderr
    for name in ('NoFrost (NF-AT)', 'BN-AT pure', 'NF-AT pure', 'BN-TRADES', 'NF-TRADES'):
        assert name in proc.stderr
    proc = run_tool(['tools/demo.py', '--study', '--methods', 'BN-AT', '--work-dir', tmp_path],
                    check=False)
    assert proc.returncode != 0 and '--study and --methods are exclusive' in proc.stderr
    assert not (tmp_path / 'runs').exists()
