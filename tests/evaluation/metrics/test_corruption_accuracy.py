"""CorruptionAccuracy: per corruption/severity, mean, and AlexNet-normalised mCE."""

import torch

import nofrost_mm  # noqa: F401
from nofrost_mm.datasets.transforms.corruption_functions import (
    ALEXNET_ERRORS,
    IMAGENET_C_CORRUPTIONS,
)
from nofrost_mm.evaluation.metrics import CorruptionAccuracy


def _ds(idx, c, s, right):
    return dict(
        sample_idx=idx,
        corruption=c,
        severity=s,
        gt_label=torch.tensor([1]),
        pred_score=torch.tensor([0.2, 0.8]) if right else torch.tensor([0.9, 0.1]),
    )


def test_accuracy_per_corruption_and_severity():
    m = CorruptionAccuracy()
    m.process(
        None,
        [
            _ds(0, 'fog', 1, True),
            _ds(1, 'fog', 1, False),
            _ds(2, 'fog', 3, True),
            _ds(3, 'snow', 1, False),
        ],
    )
    m.process(None, [_ds(1, 'fog', 1, True)])  # a padding repeat: dropped
    out = m.compute_metrics(m.results)
    assert out['fog/1'] == 50.0 and out['fog/3'] == 100.0 and out['snow/1'] == 0.0
    assert out['fog'] == 75.0 and out['snow'] == 0.0
    assert out['mean_accuracy'] == 37.5
    assert 'mCE' not in out


def test_mce_uses_the_alexnet_errors():
    m = CorruptionAccuracy(mce=True)
    idx = 0
    # error 50% on every corruption and severity (2 samples each)
    for c in IMAGENET_C_CORRUPTIONS:
        for s in range(1, 6):
            m.process(None, [_ds(idx, c, s, True), _ds(idx + 1, c, s, False)])
            idx += 2
    out = m.compute_metrics(m.results)
    expected = 100 * sum(0.5 / ALEXNET_ERRORS[c] for c in IMAGENET_C_CORRUPTIONS) / 15
    assert abs(out['mCE'] - expected) < 1e-9
    assert out['mean_accuracy'] == 50.0
