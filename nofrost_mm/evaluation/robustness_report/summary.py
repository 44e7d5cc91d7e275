"""Per-model statistics of the robustness report: accuracies and input gradients."""

import math
from typing import List, Optional

import numpy as np

from .flags import masking_flags
from .plan import VANISHING_RATIO, ReportPlan, fmt_eps


def default_tolerance(num_samples: int) -> float:
    """Accuracy points a flag tolerates: 2 samples, at least 1 point."""
    return max(1.0, 200.0 / num_samples)


def summarize(records: List[dict], plan: ReportPlan, tolerance: Optional[float] = None) -> dict:
    """Accuracies, worst case, gradient statistics and flags of one model.

    Args:
        records (list[dict]): Per-sample records of
            :class:`RobustnessRecords` (``correct``, ``seconds``,
            ``margin``, ``grad_l1``).
        plan (ReportPlan): The attacks that produced them.
        tolerance (float, optional): Accuracy points a flag tolerates.
            None means :func:`default_tolerance`.

    Returns:
        dict: ``clean``, ``attacks`` (accuracy and seconds per result),
        ``worst_case``, ``pgd`` (accuracy per steps and restarts),
        ``eps_curve``, ``gradients``, ``flags`` and ``per_sample``.
    """
    if not records:
        raise ValueError('no per-sample records to summarize')
    n = len(records)
    tol = default_tolerance(n) if tolerance is None else float(tolerance)

    def acc(name):
        return 100.0 * sum(r['correct'][name] for r in records) / n

    attacks = {
        name: dict(
            accuracy=acc(name),
            seconds=sum(r['seconds'][name] for r in records),
            precision=attack_precision(records, name),
        )
        for name in plan.attack_names
    }
    over = ['clean'] + plan.worst_case_over
    worst = 100.0 * sum(all(r['correct'][k] for k in over) for r in records) / n
    summary = dict(
        num_samples=n,
        tolerance=tol,
        clean=acc('clean'),
        attacks=attacks,
        worst_case=worst,
        worst_case_over=plan.worst_case_over,
        pgd={
            str(s): {str(k): acc(plan.pgd(s, k)) for k in sorted({1, plan.restarts})}
            for s in plan.pgd_steps
        },
        eps_curve={fmt_eps(e): acc(plan.eps_name(e)) for e in plan.eps_list},
        eps_curve_seconds={
            fmt_eps(e): sum(r['seconds'][plan.eps_name(e)] for r in records) for e in plan.eps_list
        },
        gradients=gradient_stats(records, plan.eps),
        per_sample=[dict(sample_idx=r['sample_idx'], correct=r['correct']) for r in records],
    )
    summary['flags'] = masking_flags(summary, records, plan, tol)
    return summary


def attack_precision(records: List[dict], name: str) -> Optional[str]:
    """The precision(s) the attack of result ``name`` ran in, '/'-joined.

    Read from the records' ``precision`` (per attack name; a restarts
    result ``<name>x<k>`` is its attack's); None for records that hold
    none (an evaluation state written before they did).
    """
    found = set()
    for r in records:
        precision = r.get('precision') or {}
        value = precision.get(name)
        if value is None and 'x' in name:
            value = precision.get(name.rsplit('x', 1)[0])
        if value is not None:
            found.add(value)
    return '/'.join(sorted(found)) or None


def gradient_stats(records: List[dict], eps: float) -> dict:
    """Input-gradient statistics over the correctly classified samples.

    ``ratio`` is the first-order change of the logit margin over the L-inf
    eps ball, ``eps/255 * ||grad||_1``, divided by the margin: 0 for a flat
    (masked) model, about 1 or more where an attack can flip the label.

    Args:
        records (list[dict]): Per-sample records with ``margin`` and
            ``grad_l1``.
        eps (float): The report's eps in pixel units of 255.

    Returns:
        dict: ``num_correct``, ``zero`` (zero or non-finite gradients),
        ``vanishing`` (ratio below ``VANISHING_RATIO``, not zero) and the
        median ``ratio``.
    """
    rows = [r for r in records if r['correct']['clean'] and 'grad_l1' in r]
    zero = sum(1 for r in rows if not math.isfinite(r['grad_l1']) or r['grad_l1'] == 0)
    ratios = [
        eps / 255.0 * r['grad_l1'] / r['margin']
        for r in rows
        if math.isfinite(r['grad_l1']) and r['grad_l1'] > 0 and r['margin'] > 0
    ]
    vanishing = sum(1 for x in ratios if x < VANISHING_RATIO)
    return dict(
        num_correct=len(rows),
        zero=zero,
        vanishing=vanishing,
        median_ratio=float(np.median(ratios)) if ratios else None,
    )
