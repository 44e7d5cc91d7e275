"""Attack-strength report: which attacks to run, the masking flags, the files.

The report answers "is this model's robustness real?" (see the evaluation
controversy in NoFrost's issue tracker: 23.56% under PGD, 1.28% under
AutoAttack). For every model it measures robust accuracy against attack
strength (PGD with several step counts and restarts, APGD-CE and APGD-DLR,
Square as a black-box check, full AutoAttack) and against eps, the
per-sample worst case, and raises gradient-masking flags in the spirit of
AutoAttack's own checks (Croce & Hein 2020) and of Athalye et al. 2018:

- ``steps``: robust accuracy still falling with more steps, more restarts
  or a stronger optimiser (APGD-CE below PGD with the most steps);
- ``black_box``: a black-box attack beating every white-box attack;
- ``gradients``: zero or vanishing input gradients;
- ``large_eps``: accuracy not reaching 0 at the largest eps;
- ``ordering``: a stronger attack leaving more samples correct than a
  weaker one (the guard of :class:`RobustTestLoop`).

Each flag names the numbers behind it. :class:`RobustnessReportLoop` runs
the attacks; ``tools/analysis_tools/robustness_report.py`` is the command.
One module per concern: the attack entries with restarts or chained eps
(attack_entries.py), the attack plan and the test it sets (plan.py),
statistics (summary.py), flags (flags.py), plots (plots.py), the page
(markdown.py); the per-sample records are :class:`RobustnessRecords`'s.
"""

import json
import os.path as osp
from typing import Dict, List

from .flags import masking_flags
from .markdown import markdown
from .plan import (
    AUTOATTACK_SQUARE_QUERIES,
    BLACK_BOX,
    DEFAULT_APGD_STEPS,
    DEFAULT_PGD_STEPS,
    DEFAULT_RESTARTS,
    DEFAULT_SQUARE_QUERIES,
    EPS_FACTORS,
    VANISHING_RATIO,
    ReportPlan,
    check_eps_list,
    config_eps,
    configs_eps,
    default_eps_list,
    fmt_eps,
)
from .plots import plot_eps, plot_steps
from .summary import default_tolerance, gradient_stats, summarize

__all__ = [
    'AUTOATTACK_SQUARE_QUERIES',
    'BLACK_BOX',
    'DEFAULT_APGD_STEPS',
    'DEFAULT_PGD_STEPS',
    'DEFAULT_RESTARTS',
    'DEFAULT_SQUARE_QUERIES',
    'EPS_FACTORS',
    'VANISHING_RATIO',
    'ReportPlan',
    'check_eps_list',
    'config_eps',
    'configs_eps',
    'default_eps_list',
    'default_tolerance',
    'fmt_eps',
    'gradient_stats',
    'markdown',
    'masking_flags',
    'plot_eps',
    'plot_steps',
    'summarize',
    'write_report',
]


def write_report(
    out_dir: str, models: List[dict], plan: ReportPlan, settings: dict
) -> Dict[str, str]:
    """Write ``report.md``, ``report.json`` and the two PNG plots.

    Args:
        out_dir (str): Existing output folder.
        models (list[dict]): Per model: ``name``, ``config``, ``checkpoint``
            and the :func:`summarize` output under ``summary``.
        plan (ReportPlan): The attacks.
        settings (dict): Run settings to record (seed, num_samples, ...).

    Returns:
        dict: Paths of the written files by kind.
    """
    paths = dict(
        markdown=osp.join(out_dir, 'report.md'),
        json=osp.join(out_dir, 'report.json'),
        steps_plot=osp.join(out_dir, 'accuracy_vs_steps.png'),
        eps_plot=osp.join(out_dir, 'accuracy_vs_eps.png'),
    )
    plot_steps(models, plan, paths['steps_plot'])
    plot_eps(models, plan, paths['eps_plot'])
    with open(paths['json'], 'w') as f:
        json.dump(dict(settings=settings, plan=plan.to_dict(), models=models), f, indent=1)
    with open(paths['markdown'], 'w') as f:
        f.write(markdown(models, plan, settings))
    return paths
