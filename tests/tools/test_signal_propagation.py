"""tools/analysis_tools/signal_propagation.py, as a user runs it.

Each normalizer-free model follows its own prediction (Brock et al.'s rule
with the model's alpha, beta, its stem's output and its shortcut pools):
timm's NF-ResNet-26 (average-pool shortcuts, which keep about 1/4 of a white
signal's variance at each transition), the same with strided-conv shortcuts,
and mmpretrain's BN ResNet-50 converted by NormFreeConverter. The rule ignores
zero padding and the channel-common part a weight-standardized conv removes:
measured 0.79-0.97 of the prediction at 128 px over seeds 0-3, asserted
within [0.7, 1.05]. Deleting the BNs naively lets the variance explode.
"""

import json

import pytest

from tests.conftest import REPO_ROOT, run_tool

RESNET50 = """
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet', depth=50),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=2048))
"""
NF26_STRIDED = f"""
_base_ = ['{REPO_ROOT}/configs/_base_/models/nf-resnet26.py']
model = dict(backbone=dict(avg_down=False))
"""
NF_MODELS = ('nf-resnet26', 'nf-resnet26-strided', 'resnet50 NF')


def _ratios(stats):
    return [v / p for v, p in zip(stats['var'], stats['predicted_var'])]


@pytest.fixture(scope='module')
def spp(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('spp')
    (tmp / 'resnet50.py').write_text(RESNET50)
    (tmp / 'nf-resnet26-strided.py').write_text(NF26_STRIDED)
    out, data = tmp / 'spp.png', tmp / 'spp.json'
    proc = run_tool(
        [
            'tools/analysis_tools/signal_propagation.py',
            REPO_ROOT / 'configs/_base_/models/nf-resnet26.py',
            tmp / 'nf-resnet26-strided.py',
            tmp / 'resnet50.py',
            '--out',
            out,
            '--json',
            data,
            '--img-size',
            '128',
            '--batch-size',
            '4',
        ]
    )
    assert 'plot saved' in proc.stdout
    return out, json.loads(data.read_text()), proc.stdout


def test_each_nf_model_follows_its_own_prediction(spp):
    _, results, stdout = spp
    for label in NF_MODELS:
        stats = results[label]
        assert stats['normfree'] and len(stats['var']) == (
            16 if label.startswith('resnet50') else 8
        )
        ratios = _ratios(stats)
        assert all(0.7 <= r <= 1.05 for r in ratios), (label, ratios)
        assert all(v > 0 for v in stats['branch_var'])
        assert f'{label}: {len(ratios)} blocks' in stdout
    # a prediction per model: the average pools' is ~4x lower per transition
    assert (
        results['nf-resnet26']['predicted_var'][-1]
        < results['nf-resnet26-strided']['predicted_var'][-1] / 10
    )


def test_prediction_accounts_for_what_the_rule_does_not_cover(spp):
    _, results, _ = spp
    pooled, strided = results['nf-resnet26'], results['nf-resnet26-strided']
    # the 2x2 average pools of the 3 transitions after the first keep about
    # a quarter of the variance of the (nearly white) signal
    transitions = [i for i, r in enumerate(pooled['pool_ratio']) if r != 1.0]
    assert transitions == [2, 4, 6]
    assert all(0.15 <= pooled['pool_ratio'][i] <= 0.4 for i in transitions)
    assert set(strided['pool_ratio']) == {1.0}
    for stats in results.values():
        if stats['normfree']:
            # timm's stem: a gamma-scaled conv, then a max pool with a mostly
            # positive output, which a ReLU passes almost whole
            assert 2.5 <= stats['act_gain'] <= 3.1
    # what the betas assume (unit-variance stem, no pool loss) is far off:
    # the plot's old single line, ~16x above the pooled model at the end
    assert pooled['var'][-1] < pooled['beta_expected_var'][-1] / 5


def test_naive_bn_removal_explodes(spp):
    _, results, stdout = spp
    naive = results['resnet50 naive']
    assert naive['var'][-1] > 1e3 * naive['var'][0]
    assert naive['predicted_var'] is None and not naive['normfree']
    assert 'resnet50 naive: 16 blocks' in stdout and 'no NF prediction' in stdout
    # BN (batch statistics) is bounded again, at the price of normalizing
    assert max(results['resnet50 BN']['var']) < 10


def test_plot_draws_one_prediction_per_nf_model(spp, monkeypatch):
    import matplotlib.pyplot as plt

    _, results, _ = spp
    monkeypatch.syspath_prepend(str(REPO_ROOT / 'tools/analysis_tools'))
    import signal_propagation

    fig = signal_propagation.figure(results)
    labels = [line.get_label() for line in fig.axes[1].get_lines()]
    plt.close(fig)
    assert sorted(label for label in labels if 'prediction' in label) == sorted(
        f'{label}: NF prediction' for label in NF_MODELS
    )


def test_png_written(spp):
    out, _, _ = spp
    data = out.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 20000
