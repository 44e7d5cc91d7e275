"""Which precision each attack ran in: RobustAccuracy's metrics and the robustness report."""

import nofrost_mm  # noqa: F401
from nofrost_mm.evaluation.metrics import RobustAccuracy
from nofrost_mm.evaluation.robustness_report import ReportPlan, markdown, summarize


def _sample(idx, precision):
    return dict(
        sample_idx=idx,
        robust_correct=dict(clean=True, PGD=True, FAB=False),
        attack_seconds=dict(PGD=0.5, FAB=1.0),
        attack_precision=precision,
    )


def test_metrics_name_each_attacks_precision():
    metric = RobustAccuracy()
    metric.process(
        None,
        [_sample(0, dict(PGD='bf16', FAB='fp32')), _sample(1, dict(PGD='bf16+fp32', FAB='fp32'))],
    )
    out = metric.compute_metrics(metric.results)
    # a batch re-run in fp32 after an overflow shows beside the others
    assert out['precision/PGD'] == 'bf16/bf16+fp32'
    assert out['precision/FAB'] == 'fp32'
    # results kept by an evaluation state of before: no precision key
    old = RobustAccuracy()
    old.process(None, [dict(_sample(0, {}), attack_precision=None)])
    assert not [k for k in old.compute_metrics(old.results) if k.startswith('precision/')]


def test_the_report_has_a_precision_column():
    plan = ReportPlan(
        eps=8,
        eps_list=[4, 8],
        pgd_steps=[5],
        restarts=2,
        apgd_steps=10,
        square_queries=50,
        autoattack=False,
    )
    names = plan.attack_names + [plan.eps_name(e) for e in plan.eps_list]
    # the loop records precision per attack name; 'PGD-5x2' is PGD-5's restarts
    precision = {n: 'bf16' for n in names if n != 'PGD-5x2'}
    precision['Square-50'] = 'fp32'
    records = [
        dict(
            sample_idx=i,
            correct=dict(clean=True, **{n: i < 2 for n in names}),
            seconds={n: 0.1 for n in names},
            precision=precision,
            margin=2.0,
            grad_l1=1.0,
        )
        for i in range(4)
    ]
    summary = summarize(records, plan, tolerance=5)
    assert summary['attacks']['PGD-5']['precision'] == 'bf16'
    assert summary['attacks']['PGD-5x2']['precision'] == 'bf16'
    assert summary['attacks']['Square-50']['precision'] == 'fp32'
    page = markdown(
        [dict(name='m', config='c.py', checkpoint='c.pth', summary=summary)],
        plan,
        dict(eps_source='--eps', num_samples_used=4, seed=0),
    )
    assert '| m (%, s, precision) |' in page
    assert '| PGD-5 | 50.00 (0.4 s, bf16) |' in page
    assert '| Square-50 | 50.00 (0.4 s, fp32) |' in page
