"""`make demo`'s pipeline at a minimal size: train, attack, table, summary files."""
import json

from tests.conftest import run_tool


def test_demo_quick_run_writes_table_and_summary(tmp_path):
    work_dir = tmp_path / 'demo'
    proc = run_tool(['tools/demo.py', '--quick', '--work-dir', work_dir],
                    timeout=900)
    out = proc.stdout
    assert '| method | clean acc (%) | PGD-20 acc (%) | AutoAttack acc (%) ' \
        '| train time (s) |' in out
    for name in ('Standard (BN)', 'BN-AT', 'NoFrost (NF-AT)'):
        assert f'| {name} |' in out
    summary = json.loads((work_dir / 'summary.json').read_text())
    assert (work_dir / 'summary.png').stat().st_size > 10_000
    for name, result in summary['methods'].items():
        clean, pgd, autoattack = (result[k][0] for k in
                                  ('clean', 'pgd20', 'autoattack'))
        # a sample that falls to PGD-20 or is wrong clean cannot survive more
        assert 0 <= autoattack <= clean <= 100, name
        assert pgd <= clean, name
        assert result['train_seconds'][0] > 0
    # every run wrote its checkpoint in its own timestamped folder
    runs = summary['runs']
    assert all(r[0]['checkpoint'].startswith(summary['run_dir'])
               for r in runs.values())
