"""benchmarks/gpu_check.py at --tiny size on CPU: the correctness rows pass or say they
need a GPU (their code runs all the same), every measurement runs, JSON complete."""

import json

from tests.conftest import run_tool

ROWS = [
    'standard iteration',
    'PGD-2 AT fp32',
    'PGD-2 AT fp32 channels-last',
    'PGD-2 AT AMP',
    'PGD-2 AT AMP channels-last',
    'PGD-2 AT AMP bf16',
    'N-FGSM AT fp32',
    'N-FGSM AT AMP channels-last',
    'PGD-2 generation (PGDDataPreprocessor)',
    'PGD-2 generation (torchattacks.PGD)',
    'AutoAttack standard',
    'AutoAttack standard fp16 autocast',
    'AutoAttack standard bf16 autocast',
    'APGD-T 1 step, 1 survivors, target_batch=auto',
    'FAB-T 1 step, 1 survivors, target_batch=auto',
    'APGD-T 1 step, 2 survivors, target_batch=auto',
    'FAB-T 1 step, 2 survivors, target_batch=auto',
]
NEEDS_GPU = [
    'device: every attack and a PGD AT iteration on the GPU',
    'host syncs: PGD-10 AT iteration (NF-ResNet, AGC) <= 2',
    'host syncs: AutoAttack members <= 1 per iteration',
    'random starts: per-sample numbers equal on CPU and CUDA',
]


def test_tiny_gpu_check_runs_every_row(tmp_path):
    out = tmp_path / 'gpu_check.json'
    proc = run_tool(
        [
            'benchmarks/gpu_check.py',
            '--tiny',
            '--device',
            'cpu',
            '--dry-run-gpu-rows',
            '--out',
            out,
        ],
        timeout=900,
    )
    results = json.loads(out.read_text())
    rows = {r['name']: r for r in results['correctness']}
    assert [n for n, r in rows.items() if r['status'] == 'NEEDS GPU'] == NEEDS_GPU
    assert 'rows that need a GPU (not run here): ' + '; '.join(NEEDS_GPU) in proc.stdout
    for name in NEEDS_GPU:  # their code ran on the CPU, without a verdict
        assert 'error' not in rows[name]['dry_run'], rows[name]['dry_run']
    devices = rows[NEEDS_GPU[0]]['dry_run']['details']
    assert {'pgd', 'apgd_ce', 'apgd_t', 'fab_t', 'square', 'autoattack', 'at_iteration'} == set(
        devices
    )
    others = [r for n, r in rows.items() if n not in NEEDS_GPU]
    # PGD-10 and AutoAttack on the trained and the sharpened net, FAB/Square,
    # channels-last, dist_train.sh, test.py and dist_test.sh
    assert len(others) == 4 + 4, list(rows)
    for r in others:
        assert r['status'] == 'PASS', r
    strength = rows['FAB-T and Square attack (net APGD-CE leaves partly robust)']['details']
    assert strength['fab_t'] < strength['clean'] and strength['square'] < strength['clean']
    tools = [r for n, r in rows.items() if n.startswith('tools/test.py')][0]['details']
    assert tools['one_process'] == tools['distributed'] and tools['backend'] == 'gloo'
    assert f'| {NEEDS_GPU[0]} | NEEDS GPU |' in proc.stdout

    # throughput and memory rows
    assert set(results['models']) == {'NF-ResNet-50', 'BN ResNet-50'}
    for model, measured in results['models'].items():
        assert list(measured) == ROWS, model
        for label, row in measured.items():
            assert row['images_per_s'] > 0 and row['cost_vs_standard'] > 0, (model, label)
            assert f'| {model} | {label} |' in proc.stdout
        assert 0 <= measured['AutoAttack standard']['robust_accuracy'] <= 100
        # under autocast: the same images, decisions in fp32, precision named
        for precision in ('fp16', 'bf16'):
            row = measured[f'AutoAttack standard {precision} autocast']
            assert 0 <= row['robust_accuracy'] <= 100
            assert row['precision'].startswith(precision) and 'fab-t' in row['precision']
    assert set(results['nf_vs_bn_cost']) == set(ROWS)
    dist = results['dist_train']
    assert dist['ok'] and dist['backend'] == 'gloo', dist
    assert dist['channels_last_kept'] is True  # channels_last=True through DDP
    assert 'tools/dist_train.sh, 1 process(es) (gloo): OK' in proc.stdout
    assert results['summary'] == {'NEEDS GPU': 4, 'PASS': 8}
