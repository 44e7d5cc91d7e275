"""benchmarks/gpu_check.py at --tiny size on CPU: every row runs, JSON complete."""
import json

from tests.conftest import run_tool

ROWS = ['standard iteration', 'PGD-2 AT fp32', 'PGD-2 AT fp32 channels-last',
        'PGD-2 AT AMP', 'PGD-2 AT AMP channels-last', 'PGD-2 AT AMP bf16', 'N-FGSM AT fp32',
        'N-FGSM AT AMP channels-last', 'PGD-2 generation (PGDDataPreprocessor)',
        'PGD-2 generation (torchattacks.PGD)', 'AutoAttack standard',
        'AutoAttack standard fp16 autocast', 'AutoAttack standard bf16 autocast']


def test_tiny_gpu_check_runs_every_measurement(tmp_path):
    out = tmp_path / 'gpu_check.json'
    proc = run_tool(['benchmarks/gpu_check.py', '--tiny', '--device', 'cpu', '--out', out],
                    timeout=300)
    results = json.loads(out.read_text())
    assert set(results['models']) == {'NF-ResNet-50', 'BN ResNet-50'}
    for model, rows in results['models'].items():
        assert list(rows) == ROWS, model
        for label, row in rows.items():
            assert row['images_per_s'] > 0 and row['cost_vs_standard'] > 0, (model, label)
            assert f'| {model} | {label} |' in proc.stdout
        assert 0 <= rows['AutoAttack standard']['robust_accuracy'] <= 100
        # under autocast: the same images, decisions in fp32, precision named
        for precision in ('fp16', 'bf16'):
            row = rows[f'AutoAttack standard {precision} autocast']
            assert 0 <= row['robust_accuracy'] <= 100
            assert row['precision'].startswith(precision) and 'fab-t' in row['precision']
    dist = results['dist_train']
    assert dist['ok'] and dist['backend'] == 'gloo', dist
    assert dist['channels_last_kept'] is True  # channels_last=True through DDP
    assert 'tools/dist_train.sh, 1 process (gloo): OK' in proc.stdout
