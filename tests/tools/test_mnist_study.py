"""tools/mnist_study.py end to end at a minimal size, and resumed."""
import json

from tests.conftest import run_tool
from tests.datasets.fake_mnist import write_fake_mnist

METHOD = 'FGSM-RS (Wong et al. net and recipe)'


def test_quick_study_writes_the_table_and_resumes(tmp_path):
    data_root = tmp_path / 'mnist'
    write_fake_mnist(data_root, 300, 40)
    work_dir = tmp_path / 'study'
    args = ['tools/mnist_study.py', '--quick', '--no-autoattack', '--methods', METHOD,
            '--data-root', data_root, '--work-dir', work_dir]
    out = run_tool(args, timeout=600).stdout
    assert ('| method | test images | seeds | clean (%) | PGD-50x10 (%) | AutoAttack (%) '
            '| worst case (%) | train time (s) |') in out
    # the published rows stand beside ours
    assert '| Wong et al. 2020 (FGSM-RS), published | 10000 | - | 98.50 | - | 82.93 |' in out
    summary = json.loads((work_dir / 'summary.json').read_text())
    run, = summary['rows'][METHOD]
    metrics = run['metrics']
    assert run['num_samples'] == 20 and run['train_seconds'] > 0
    assert 0 <= metrics['robust/PGD-50x10'] <= metrics['robust/PGD-50'] \
        <= metrics['robust/clean'] <= 100
    assert (work_dir / 'table.md').read_text().strip() == summary['table']
    # run again: nothing is trained or evaluated again, the same table
    again = run_tool(args, timeout=120).stdout
    assert 'Epoch(' not in again and 'robust/' not in again
    assert json.loads((work_dir / 'summary.json').read_text())['table'] == summary['table']


def test_unknown_method_fails_before_any_work(tmp_path):
    proc = run_tool(['tools/mnist_study.py', '--methods', 'FGSM', '--work-dir', tmp_path],
                    check=False)
    assert proc.returncode == 2
    assert "--methods ['FGSM']: allowed" in proc.stderr and METHOD in proc.stderr
    assert list(tmp_path.iterdir()) == []
