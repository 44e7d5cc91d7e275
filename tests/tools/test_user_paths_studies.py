"""tools/demo.py and tools/mnist_study.py on the config families their tables
lack a test of: the cells of the matrix in test_user_paths.py (these tools
train their own configs)."""

import json

from tests.conftest import run_tool
from tests.datasets.fake_mnist import write_fake_mnist


def test_demo_single_step(tmp_path):
    proc = run_tool(
        ['tools/demo.py', '--quick', '--methods', 'BN-AT FGSM-RS', '--work-dir', tmp_path],
        timeout=600,
    )
    assert '| BN-AT FGSM-RS | 32 |' in proc.stdout
    summary = json.loads((tmp_path / 'summary.json').read_text())
    result = summary['methods']['BN-AT FGSM-RS']
    clean, pgd, autoattack, worst = (
        result[k]['mean'] for k in ('clean', 'pgd20', 'autoattack', 'worst_case')
    )
    assert 0 <= autoattack <= clean <= 100 and pgd <= clean
    assert worst <= min(pgd, autoattack)


def test_mnist_study_pgd_at_nf(tmp_path):
    """One row that is both a PGD-AT and a normalizer-free config."""
    data = tmp_path / 'mnist'
    write_fake_mnist(data, 300, 40)
    method = 'PGD-40 AT, NF'
    proc = run_tool(
        [
            'tools/mnist_study.py',
            '--quick',
            '--no-autoattack',
            '--methods',
            method,
            '--data-root',
            data,
            '--work-dir',
            tmp_path / 'study',
        ],
        timeout=600,
    )
    assert f'| {method} | 20 | 1 |' in proc.stdout
    (run,) = json.loads((tmp_path / 'study' / 'summary.json').read_text())['rows'][method]
    assert run['config'] == 'configs/mnist/fast-at-cnn-nf_1xb100_mnist_pgdat.py'
    metrics = run['metrics']
    assert (
        0
        <= metrics['robust/PGD-50x10']
        <= metrics['robust/PGD-50']
        <= metrics['robust/clean']
        <= 100
    )
