"""tools/analysis_tools/signal_propagation.py on ResNet-101s, as a user runs it.

NF-ResNet-101 (strided-conv shortcuts, as in Brock et al.) and the converted
BN ResNet-101 keep every block's variance within 4x of what beta predicts;
deleting the BNs naively lets it explode. timm's NF-ResNet (average-pool
shortcuts, our default for parity) loses variance at each transition
instead: bounded, but below the prediction.
"""
import json

import pytest

from tests.conftest import REPO_ROOT, run_tool

RESNET101 = """
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet', depth=101),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=2048))
"""
NF101_STRIDED = f"""
_base_ = ['{REPO_ROOT}/configs/_base_/models/nf-resnet101.py']
model = dict(backbone=dict(avg_down=False))
"""


def _ratios(stats):
    return [v / p for v, p in zip(stats['var'], stats['predicted_var'])]


@pytest.fixture(scope='module')
def spp(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('spp')
    (tmp / 'resnet101.py').write_text(RESNET101)
    (tmp / 'nf-resnet101-strided.py').write_text(NF101_STRIDED)
    out, data = tmp / 'spp.png', tmp / 'spp.json'
    proc = run_tool([
        'tools/analysis_tools/signal_propagation.py',
        tmp / 'nf-resnet101-strided.py',
        REPO_ROOT / 'configs/_base_/models/nf-resnet101.py',
        tmp / 'resnet101.py', '--out', out, '--json', data, '--img-size',
        '64', '--batch-size', '4'
    ])
    assert 'plot saved' in proc.stdout
    return out, json.loads(data.read_text())


def test_nf_and_converted_stay_near_beta_prediction(spp):
    _, results = spp
    for label in ('nf-resnet101-strided', 'resnet101 NF'):
        stats = results[label]
        assert len(stats['var']) == 33 and stats['normfree']
        ratios = _ratios(stats)
        assert all(0.25 <= r <= 4 for r in ratios), (label, ratios)
        assert all(v > 0 for v in stats['branch_var'])


def test_naive_bn_removal_explodes(spp):
    _, results = spp
    ratios = _ratios(results['resnet101 naive'])
    assert max(ratios) > 1e3
    assert not all(0.25 <= r <= 4 for r in ratios)
    # BN (batch statistics) is bounded again, at the price of normalizing
    assert 'resnet101 BN' in results


def test_avg_pool_shortcuts_lose_variance_at_transitions(spp):
    _, results = spp
    ratios = _ratios(results['nf-resnet101'])
    assert max(ratios) <= 4  # never grows past the prediction
    stage_starts = [0, 3, 7, 30]  # depths (3, 4, 23, 3)
    for start, end in zip(stage_starts, stage_starts[1:] + [33]):
        stage = ratios[start:end]
        assert max(stage) / min(stage) <= 4  # bounded within a stage
    assert ratios[-1] < ratios[0] / 4  # each pool divides the variance


def test_png_written(spp):
    out, _ = spp
    data = out.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 20000
