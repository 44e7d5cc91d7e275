"""RobustAccuracy: per-attack, worst-case, times, and padding repeats dropped."""

import pytest

import nofrost_mm  # noqa: F401
from nofrost_mm.evaluation.metrics import RobustAccuracy


def _sample(idx, clean, pgd, aa):
    return dict(
        sample_idx=idx,
        robust_correct=dict(clean=clean, PGD=pgd, AutoAttack=aa),
        attack_seconds=dict(PGD=0.5, AutoAttack=2.0),
    )


def test_robust_accuracy_worst_case_and_dedup():
    metric = RobustAccuracy()
    metric.process(
        None,
        [
            _sample(0, True, True, False),
            _sample(1, True, False, True),
            _sample(2, True, True, True),
            _sample(3, False, False, False),
        ],
    )
    # a padding repeat of sample 0 with another outcome comes later: dropped
    metric.process(None, [_sample(0, True, True, True)])
    out = metric.compute_metrics(metric.results)
    assert out['clean'] == 75.0
    assert out['PGD'] == 50.0 and out['AutoAttack'] == 50.0
    assert out['worst_case'] == 25.0  # only sample 2 survives both
    assert out['time_s/PGD'] == 2.0 and out['time_s/AutoAttack'] == 8.0
    assert out['num_samples'] == 4


def test_needs_the_robust_loop():
    with pytest.raises(KeyError, match='RobustTestLoop'):
        RobustAccuracy().process(None, [dict(sample_idx=0)])
