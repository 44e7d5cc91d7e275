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
"""
import json
import math
import os.path as osp
from types import SimpleNamespace
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from nofrost_mm.attacks import attack_name, build_attacks
from .gradient_masking import gradient_masking_warnings
from .report_attack_entries import restart_name, split_report_keys

DEFAULT_PGD_STEPS = (5, 10, 20, 50, 100)
DEFAULT_RESTARTS = 5
DEFAULT_APGD_STEPS = 100
DEFAULT_SQUARE_QUERIES = 1000
# Square's budget inside standard AutoAttack
AUTOATTACK_SQUARE_QUERIES = 5000
# default eps curve, in multiples of the report's eps
EPS_FACTORS = (0.25, 0.5, 1., 2., 4.)
# attacks that only query the model's outputs
BLACK_BOX = ('Square', 'SquareAttack', 'OnePixel', 'Pixle')
# a first-order margin change over the eps ball below this fraction of the
# margin counts as a vanishing gradient
VANISHING_RATIO = 1e-3


def config_eps(cfg) -> Optional[float]:
    """The eps (pixel units of 255) of a config's training attack, if any.

    Looked up, in order, in the data preprocessor's training attack (top
    level or inside ``model``), the ``val_attack`` of a hook, and the first
    ``test_attacks`` / ``test_cfg.attacks`` entry with an eps.

    Args:
        cfg (Config | dict): A loaded config.

    Returns:
        float | None: The eps, or None when the config has no attack.
    """
    def get(d, *keys):
        for k in keys:
            if not isinstance(d, dict) or k not in d:
                return None
            d = d[k]
        return d

    candidates = [get(cfg, 'data_preprocessor', 'attack', 'eps'),
                  get(cfg, 'model', 'data_preprocessor', 'attack', 'eps')]
    candidates += [get(h, 'val_attack', 'eps')
                   for h in cfg.get('custom_hooks') or []]
    tests = list(cfg.get('test_attacks') or []) + \
        list(get(cfg, 'test_cfg', 'attacks') or [])
    candidates += [get(a, 'eps') for a in tests]
    for eps in candidates:
        if isinstance(eps, (int, float)) and not isinstance(eps, bool):
            return float(eps)
    return None


def default_eps_list(eps: float) -> List[float]:
    """``EPS_FACTORS`` times ``eps``, capped at 255 (the L-inf maximum)."""
    return sorted({min(255., round(f * eps, 4)) for f in EPS_FACTORS})


def check_eps_list(values: Sequence[float]) -> List[float]:
    """Sorted eps values (pixel units of 255), or a clear error.

    Args:
        values (Sequence[float]): Values for the eps curve.

    Returns:
        list[float]: The values, sorted.
    """
    values = list(values)
    if len(values) < 2:
        raise ValueError(f'--eps-list needs at least 2 values for a curve, got '
                         f'{values}')
    for v in values:
        if not isinstance(v, (int, float)) or isinstance(v, bool) \
                or not 0 < v <= 255 or math.isnan(v):
            raise ValueError(f'--eps-list: {v!r} is not in (0, 255] (pixel '
                             'units of 255, e.g. 8 for 8/255)')
    if len(set(values)) != len(values):
        raise ValueError(f'--eps-list: repeated values in {values}')
    return sorted(float(v) for v in values)


def _fmt(eps: float) -> str:
    return f'{eps:g}'


@dataclass
class ReportPlan:
    """The attacks of the report and how their results are read.

    Args:
        eps (float): The report's eps (pixel units of 255, L-inf).
        eps_list (Sequence[float]): Eps values of the curve.
        pgd_steps (Sequence[int]): PGD step counts. Defaults to
            ``DEFAULT_PGD_STEPS``.
        restarts (int): PGD restarts (results for 1 and this many).
            Defaults to ``DEFAULT_RESTARTS``.
        pgd_step_size (float, optional): PGD step size in pixel units of
            255, the same for every step count (more steps then travel
            farther). Defaults to None: the official NoFrost rule
            ``min(1.25 * eps, eps + 4) / steps``, under which every step
            count travels the same total distance, so more steps alone do
            not make PGD stronger.
        apgd_steps (int): Steps of APGD-CE / APGD-DLR and of the eps curve's
            APGD-CE. Defaults to ``DEFAULT_APGD_STEPS``.
        square_queries (int): Queries of the black-box Square attack
            (0 skips it). Defaults to ``DEFAULT_SQUARE_QUERIES``.
        autoattack (bool): Run standard AutoAttack (see
            :meth:`_autoattack_entries`). Defaults to True.
        autoattack_queries (int): Queries of AutoAttack's Square stage; the
            standard version uses 5000. Defaults to
            ``AUTOATTACK_SQUARE_QUERIES``.
        extra_attacks (Sequence[dict]): More attack configs (optional
            ``name``), reported and, when L-inf at eps <= ``eps``, part of
            the worst case. Defaults to ().

    Example:
        >>> plan = ReportPlan(eps=8, eps_list=[2, 4, 8, 16, 32])
        >>> test_cfg = dict(type='RobustnessReportLoop', attacks=plan.cfgs)
        >>> summary = summarize(records, plan)  # records of the loop
    """

    eps: float
    eps_list: Sequence[float]
    pgd_steps: Sequence[int] = DEFAULT_PGD_STEPS
    restarts: int = DEFAULT_RESTARTS
    pgd_step_size: Optional[float] = None
    apgd_steps: int = DEFAULT_APGD_STEPS
    square_queries: int = DEFAULT_SQUARE_QUERIES
    autoattack: bool = True
    autoattack_queries: int = AUTOATTACK_SQUARE_QUERIES
    extra_attacks: Sequence[dict] = ()
    cfgs: List[dict] = field(init=False)

    def __post_init__(self):
        if not isinstance(self.eps, (int, float)) or not 0 < self.eps <= 255:
            raise ValueError(f'eps must be in (0, 255] (pixel units of 255), '
                             f'got {self.eps!r}')
        self.eps_list = check_eps_list(self.eps_list)
        steps = list(self.pgd_steps)
        if not steps or any(not isinstance(s, int) or s < 1 for s in steps) \
                or len(set(steps)) != len(steps):
            raise ValueError(f'PGD steps must be distinct ints >= 1, got {steps}')
        self.pgd_steps = sorted(steps)
        for key in ('restarts', 'apgd_steps'):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ValueError(f'{key} must be an int >= 1, got '
                                 f'{getattr(self, key)!r}')
        if self.pgd_step_size is not None and (
                not isinstance(self.pgd_step_size, (int, float))
                or isinstance(self.pgd_step_size, bool)
                or not 0 < self.pgd_step_size <= 255):
            raise ValueError('pgd_step_size must be None (the official rule) '
                             'or in (0, 255] (pixel units of 255), got '
                             f'{self.pgd_step_size!r}')
        if not isinstance(self.square_queries, int) or self.square_queries < 0:
            raise ValueError('square_queries must be an int >= 0, got '
                             f'{self.square_queries!r}')
        if not isinstance(self.autoattack_queries, int) \
                or self.autoattack_queries < 1:
            raise ValueError('autoattack_queries must be an int >= 1, got '
                             f'{self.autoattack_queries!r}')
        self.cfgs = self._attack_cfgs()
        # every config is checked (names, kwargs, torchattacks' own checks)
        # here, before any model is built
        plain, _, _ = split_report_keys(self.cfgs)
        self.built = {name: (attack, cfg) for name, attack, cfg
                      in build_attacks(plain)}

    # names of the results
    def pgd(self, steps: int, restarts: int = 1) -> str:
        """Result name of PGD with ``steps`` steps and 1 or all restarts."""
        name = f'PGD-{steps}'
        return name if restarts == 1 else restart_name(name, restarts)

    @property
    def apgd_ce(self) -> str:
        return f'APGD-CE-{self.apgd_steps}'

    def eps_name(self, eps: float) -> str:
        """Result name of the eps curve's attack at ``eps``."""
        return f'{self.apgd_ce}@{_fmt(eps)}'

    def _attack_cfgs(self) -> List[dict]:
        """Entries of :class:`RobustnessReportLoop`, in running order."""
        eps = self.eps
        step = {} if self.pgd_step_size is None else dict(
            step_size=self.pgd_step_size)
        entries = [dict(name=self.pgd(s), restarts=self.restarts,
                        attack=dict(type='PGDAttack', eps=eps, steps=s,
                                    **step))
                   for s in self.pgd_steps]
        for loss in ('ce', 'dlr'):
            entries.append(dict(
                name=f'APGD-{loss.upper()}-{self.apgd_steps}',
                attack=dict(type='APGDAttack', eps=eps, steps=self.apgd_steps,
                            loss=loss, n_restarts=1)))
        if self.square_queries:
            entries.append(dict(
                name=f'Square-{self.square_queries}',
                attack=dict(type='SquareAttack', eps=eps,
                            n_queries=self.square_queries)))
        if self.autoattack:
            entries += self._autoattack_entries()
        for cfg in self.extra_attacks:
            cfg = dict(cfg)
            name = cfg.pop('name', None) or attack_name(cfg)
            entries.append(dict(name=name, attack=cfg))
        # the eps curve: each eps attacks the survivors of the smaller one
        # (its ball contains the smaller ball), so the curve is monotone and
        # robust models pay for the large eps on few samples only
        prev = None
        for e in self.eps_list:
            entries.append(dict(
                name=self.eps_name(e), after=prev,
                attack=dict(type='APGDAttack', eps=e, steps=self.apgd_steps,
                            loss='ce', n_restarts=1)))
            prev = self.eps_name(e)
        return entries

    def _autoattack_entries(self) -> List[dict]:
        """Standard AutoAttack as a chain of entries.

        Croce & Hein's standard version runs APGD-CE, APGD-T (9 target
        classes), FAB-T (9 targets) with 100 iterations each, then Square
        with 5000 queries, every attack on the survivors of the previous
        ones. The stages are the members of the plug-in's ``AutoAttack``
        (:mod:`nofrost_mm.attacks.autoattack`, the reference's settings);
        as separate entries each stage gets ``apgd_steps`` (100 by default)
        and its own result, and the first stage is exactly the APGD-CE
        entry, so it is not run again.
        """
        eps, steps = self.eps, self.apgd_steps
        stages = [('APGD-T', dict(type='APGDAttack', eps=eps, steps=steps,
                                  loss='dlr-targeted', n_restarts=1)),
                  ('FAB-T', dict(type='FABAttack', eps=eps, steps=steps)),
                  ('Square', dict(type='SquareAttack', eps=eps,
                                  n_queries=self.autoattack_queries))]
        entries, prev = [], self.apgd_ce
        for stage, attack in stages:
            name = 'AutoAttack' if stage == 'Square' \
                else f'AutoAttack/{stage}'
            entries.append(dict(name=name, after=prev, attack=attack))
            prev = name
        return entries

    @property
    def chained(self) -> List[str]:
        """Results that count the samples an earlier result broke."""
        return [e['name'] for e in self.cfgs if e.get('after')]

    def at_report_eps(self, name: str) -> bool:
        """Whether an attack is L-inf within the report's eps."""
        attack, _ = self.built[name]
        eps = getattr(attack, 'eps', None)
        return getattr(attack, 'norm', 'Linf') == 'Linf' and eps is not None \
            and eps <= self.eps + 1e-9

    @property
    def attack_names(self) -> List[str]:
        """Results at the report's eps, in running order (curve excluded)."""
        curve = {self.eps_name(e) for e in self.eps_list}
        names = []
        for cfg in self.cfgs:
            if cfg['name'] in curve:
                continue
            names.append(cfg['name'])
            if cfg.get('restarts', 1) > 1:
                names.append(restart_name(cfg['name'], cfg['restarts']))
        return names

    def _base(self, name: str) -> str:
        return name if name in self.built else name.rsplit('x', 1)[0]

    @property
    def worst_case_over(self) -> List[str]:
        """Results the per-sample worst case is taken over."""
        curve = [self.eps_name(e) for e in self.eps_list if e <= self.eps]
        return [n for n in self.attack_names
                if self.at_report_eps(self._base(n))] + curve

    @property
    def black_box(self) -> List[str]:
        """Standalone black-box results."""
        return [n for n in self.attack_names if n not in self.chained
                and self.built[self._base(n)][1]['type'] in BLACK_BOX]

    @property
    def white_box(self) -> List[str]:
        """Standalone white-box results at the report's eps."""
        # AutoAttack contains Square: it is neither
        return [n for n in self.attack_names if n not in self.black_box
                and n not in self.chained
                and self.built[self._base(n)][1]['type'] != 'AutoAttack'
                and self.at_report_eps(self._base(n))]

    def to_dict(self) -> dict:
        return dict(eps=self.eps, eps_list=list(self.eps_list),
                    pgd_steps=list(self.pgd_steps), restarts=self.restarts,
                    pgd_step_size=self.pgd_step_size,
                    apgd_steps=self.apgd_steps,
                    square_queries=self.square_queries,
                    autoattack=self.autoattack,
                    autoattack_queries=self.autoattack_queries,
                    attacks=self.cfgs)


def default_tolerance(num_samples: int) -> float:
    """Accuracy points a flag tolerates: 2 samples, at least 1 point."""
    return max(1., 200. / num_samples)


def summarize(records: List[dict], plan: ReportPlan,
              tolerance: Optional[float] = None) -> dict:
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
        return 100. * sum(r['correct'][name] for r in records) / n

    attacks = {name: dict(accuracy=acc(name),
                          seconds=sum(r['seconds'][name] for r in records))
               for name in plan.attack_names}
    over = ['clean'] + plan.worst_case_over
    worst = 100. * sum(all(r['correct'][k] for k in over)
                       for r in records) / n
    summary = dict(
        num_samples=n, tolerance=tol, clean=acc('clean'), attacks=attacks,
        worst_case=worst, worst_case_over=plan.worst_case_over,
        pgd={str(s): {str(k): acc(plan.pgd(s, k))
                      for k in sorted({1, plan.restarts})}
             for s in plan.pgd_steps},
        eps_curve={_fmt(e): acc(plan.eps_name(e)) for e in plan.eps_list},
        eps_curve_seconds={_fmt(e): sum(r['seconds'][plan.eps_name(e)]
                                        for r in records)
                           for e in plan.eps_list},
        gradients=gradient_stats(records, plan.eps),
        per_sample=[dict(sample_idx=r['sample_idx'], correct=r['correct'])
                    for r in records])
    summary['flags'] = masking_flags(summary, records, plan, tol)
    return summary


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
    zero = sum(1 for r in rows
               if not math.isfinite(r['grad_l1']) or r['grad_l1'] == 0)
    ratios = [eps / 255. * r['grad_l1'] / r['margin'] for r in rows
              if math.isfinite(r['grad_l1']) and r['grad_l1'] > 0
              and r['margin'] > 0]
    vanishing = sum(1 for x in ratios if x < VANISHING_RATIO)
    return dict(num_correct=len(rows), zero=zero, vanishing=vanishing,
                median_ratio=float(np.median(ratios)) if ratios else None)


def _flag(flag_id: str, title: str, message: str, **numbers) -> dict:
    return dict(id=flag_id, title=title, message=message, numbers=numbers)


def masking_flags(summary: dict, records: List[dict], plan: ReportPlan,
                  tol: float) -> List[dict]:
    """Gradient-masking flags of one model, each naming its numbers.

    Args:
        summary (dict): The accuracies of :func:`summarize`.
        records (list[dict]): Per-sample records.
        plan (ReportPlan): The attacks.
        tol (float): Accuracy points tolerated before a flag.

    Returns:
        list[dict]: Flags with ``id``, ``title``, ``message``, ``numbers``.
    """
    flags = []
    attacks = summary['attacks']
    pgd = summary['pgd']
    eps = _fmt(plan.eps)

    # 1. still falling with more steps / restarts
    if len(plan.pgd_steps) >= 2:
        s1, s2 = plan.pgd_steps[-2:]
        a1, a2 = pgd[str(s1)]['1'], pgd[str(s2)]['1']
        if a1 - a2 > tol:
            flags.append(_flag(
                'steps', 'robust accuracy still falling with more steps',
                f'PGD-{s2} leaves {a2:.2f}% robust, {a1 - a2:.2f} points '
                f'below PGD-{s1} ({a1:.2f}%) at eps {eps}/255: the attack has '
                'not converged; trust only the strongest attacks',
                weaker=f'PGD-{s1}', weaker_acc=a1, stronger=f'PGD-{s2}',
                stronger_acc=a2))
    if plan.restarts > 1:
        s = plan.pgd_steps[-1]
        a1, ak = pgd[str(s)]['1'], pgd[str(s)][str(plan.restarts)]
        if a1 - ak > tol:
            flags.append(_flag(
                'steps', 'robust accuracy still falling with more restarts',
                f'{plan.restarts} restarts of PGD-{s} leave {ak:.2f}%, '
                f'{a1 - ak:.2f} points below one restart ({a1:.2f}%) at eps '
                f'{eps}/255: the loss surface is rugged or the attack '
                'under-converged',
                weaker=plan.pgd(s), weaker_acc=a1,
                stronger=plan.pgd(s, plan.restarts), stronger_acc=ak))

    s = plan.pgd_steps[-1]
    a_pgd, a_apgd = pgd[str(s)]['1'], attacks[plan.apgd_ce]['accuracy']
    if a_pgd - a_apgd > tol:
        flags.append(_flag(
            'steps', 'robust accuracy still falling with a stronger optimiser',
            f'{plan.apgd_ce} leaves {a_apgd:.2f}%, {a_pgd - a_apgd:.2f} '
            f'points below PGD-{s} ({a_pgd:.2f}%) at eps {eps}/255: '
            'fixed-step PGD has not found the adversarial examples, so PGD '
            'numbers overstate the robustness (the NoFrost controversy)',
            weaker=plan.pgd(s), weaker_acc=a_pgd, stronger=plan.apgd_ce,
            stronger_acc=a_apgd))

    # 2. a black-box attack beats every white-box attack
    white = [n for n in plan.white_box if n in attacks]
    if white:
        best = min(white, key=lambda n: attacks[n]['accuracy'])
        best_acc = attacks[best]['accuracy']
        for bb in plan.black_box:
            bb_acc = attacks[bb]['accuracy']
            only_bb = sum(1 for r in records if not r['correct'][bb]
                          and all(r['correct'][w] for w in white))
            if best_acc - bb_acc > tol:
                flags.append(_flag(
                    'black_box', 'a black-box attack beats the white-box ones',
                    f'{bb} (no gradients) leaves {bb_acc:.2f}%, '
                    f'{best_acc - bb_acc:.2f} points below the best white-box '
                    'attack '
                    f'{best} ({best_acc:.2f}%) at eps {eps}/255; {only_bb} '
                    'samples survive every white-box attack but not '
                    f'{bb}: the gradients mislead the attacks',
                    black_box=bb, black_box_acc=bb_acc, white_box=best,
                    white_box_acc=best_acc, only_black_box=only_bb))

    # 3. zero or vanishing input gradients
    grads = summary['gradients']
    bad = grads['zero'] + grads['vanishing']
    if bad:
        flags.append(_flag(
            'gradients', 'zero or vanishing input gradients',
            f"{grads['zero']} of {grads['num_correct']} correctly classified "
            f"samples have a zero (or non-finite) input gradient of the logit "
            f"margin and {grads['vanishing']} a vanishing one (first-order "
            f'margin change over the eps {eps}/255 ball below '
            f'{VANISHING_RATIO:g} of the margin): gradient-based attacks '
            'cannot move them', **grads))

    # 4. accuracy not reaching 0 at the largest eps
    big = plan.eps_list[-1]
    big_acc = summary['eps_curve'][_fmt(big)]
    if big_acc > tol:
        flags.append(_flag(
            'large_eps', 'accuracy not reaching 0 at large eps',
            f'{plan.eps_name(big)} leaves {big_acc:.2f}% robust at eps '
            f'{_fmt(big)}/255, the largest eps tried: a large enough '
            'perturbation changes any label, so the attack is failing '
            '(if this eps is small for the data, add larger ones to '
            '--eps-list)', eps=big, accuracy=big_acc))

    # 5. a stronger attack above a weaker one (RobustTestLoop's guard), over
    # the standalone results at the report's eps, and AutoAttack as a whole
    standalone = [(n, a, c) for n, (a, c) in plan.built.items()
                  if n in attacks and n not in plan.chained
                  and plan.at_report_eps(n)]
    if plan.autoattack:
        standalone.append(('AutoAttack', SimpleNamespace(
            eps=plan.eps, norm='Linf', steps=None), dict(type='AutoAttack')))
    accs = {n: attacks[n]['accuracy'] for n, _, _ in standalone}
    for msg in gradient_masking_warnings(standalone, accs, None, tol):
        flags.append(_flag('ordering', 'a stronger attack above a weaker one',
                           msg))
    return flags


def write_report(out_dir: str, models: List[dict], plan: ReportPlan,
                 settings: dict) -> Dict[str, str]:
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
    paths = dict(markdown=osp.join(out_dir, 'report.md'),
                 json=osp.join(out_dir, 'report.json'),
                 steps_plot=osp.join(out_dir, 'accuracy_vs_steps.png'),
                 eps_plot=osp.join(out_dir, 'accuracy_vs_eps.png'))
    plot_steps(models, plan, paths['steps_plot'])
    plot_eps(models, plan, paths['eps_plot'])
    with open(paths['json'], 'w') as f:
        json.dump(dict(settings=settings, plan=plan.to_dict(), models=models),
                  f, indent=1)
    with open(paths['markdown'], 'w') as f:
        f.write(markdown(models, plan, settings))
    return paths


def _colors(n: int):
    import matplotlib
    cmap = matplotlib.colormaps['tab10']
    return [cmap(i % 10) for i in range(n)]


def plot_steps(models: List[dict], plan: ReportPlan, path: str) -> None:
    """Robust accuracy against PGD steps, one colour per model."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(7.5, 5.2), dpi=120)
    colors = _colors(len(models))
    for i, (m, color) in enumerate(zip(models, colors)):
        pgd = m['summary']['pgd']
        steps = plan.pgd_steps
        lw = _width(i, len(models))
        ax.plot(steps, [pgd[str(s)]['1'] for s in steps], 'o-', color=color,
                lw=lw, ms=7)
        if plan.restarts > 1:
            # hollow markers: visible where the two lines coincide
            ax.plot(steps, [pgd[str(s)][str(plan.restarts)] for s in steps],
                    's--', color=color, lw=lw * 0.6, ms=9, mfc='none')
        ax.axhline(m['summary']['worst_case'], color=color, ls=':',
                   lw=lw * 0.8)
        # APGD-CE at its own step count: where PGD stays above it, the
        # fixed-step PGD has not converged
        ax.plot([plan.apgd_steps],
                [m['summary']['attacks'][plan.apgd_ce]['accuracy']], '*',
                color=color, ms=14, mec='k', mew=0.6)
    # colour = model, line style = what is measured: two short legends
    styles = [Line2D([], [], color='k', marker='o', ls='-',
                     label='PGD, 1 restart')]
    if plan.restarts > 1:
        styles.append(Line2D([], [], color='k', marker='s', mfc='none',
                             ls='--', label=f'PGD, {plan.restarts} restarts'))
    styles.append(Line2D([], [], color='w', marker='*', ms=12, mfc='grey',
                         mec='k', ls='none',
                         label=f'{plan.apgd_ce} (adaptive step)'))
    styles.append(Line2D([], [], color='k', ls=':',
                         label='worst case over all attacks'))
    legends = [ax.legend(
        handles=[Line2D([], [], color=c, lw=3, label=m['name'])
                 for m, c in zip(models, colors)],
        fontsize=8, loc='upper left', bbox_to_anchor=(0, -0.12),
        title='model', title_fontsize=8)]
    ax.add_artist(legends[0])
    legends.append(ax.legend(handles=styles, fontsize=8, loc='upper right',
                             bbox_to_anchor=(1, -0.12)))
    ax.set_xscale('log')
    ticks = sorted(set(plan.pgd_steps) | {plan.apgd_steps})
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(s) for s in ticks])
    ax.minorticks_off()
    rule = ('step min(1.25 eps, eps + 4) / steps' if plan.pgd_step_size is None
            else f'step {_fmt(plan.pgd_step_size)}/255')
    ax.set_xlabel(f'PGD steps ({rule})')
    ax.set_ylabel('robust accuracy (%)')
    ax.set_ylim(-2, 102)
    ax.set_title(f'Robust accuracy vs attack steps (L-inf eps '
                 f'{_fmt(plan.eps)}/255)')
    ax.grid(alpha=0.3)
    # the legends sit below the axes, never over the lines
    fig.savefig(path, bbox_inches='tight', bbox_extra_artists=legends)
    plt.close(fig)


def _width(i: int, n: int) -> float:
    """Line width of model ``i`` of ``n``: earlier models drawn wider, so
    that lines with the same values stay visible under later ones."""
    return 1.8 + 1.2 * (n - 1 - i)


def plot_eps(models: List[dict], plan: ReportPlan, path: str) -> None:
    """Robust accuracy against eps (clean at eps 0), one line per model."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    xs = [0.] + list(plan.eps_list)
    for i, (m, color) in enumerate(zip(models, _colors(len(models)))):
        s = m['summary']
        ys = [s['clean']] + [s['eps_curve'][_fmt(e)] for e in plan.eps_list]
        ax.plot(xs, ys, 'o-', color=color, lw=_width(i, len(models)),
                label=m['name'])
    ax.axvline(plan.eps, color='grey', ls=':', lw=1,
               label=f'report eps {_fmt(plan.eps)}/255')
    ax.set_xticks(xs)
    ax.set_xticklabels([_fmt(x) for x in xs])
    ax.set_xlabel('L-inf eps (pixel units of 255)')
    ax.set_ylabel('robust accuracy (%)')
    ax.set_ylim(-2, 102)
    ax.set_title(f'Robust accuracy vs eps ({plan.apgd_ce}; eps 0 = clean)')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc='best')
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '|'.join(' --- ' for _ in header) + '|']
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines) + '\n'


def _pct(x: Optional[float]) -> str:
    return '-' if x is None else f'{x:.2f}'


def markdown(models: List[dict], plan: ReportPlan, settings: dict) -> str:
    """The Markdown report: summary, flags, tables, plots."""
    eps = _fmt(plan.eps)
    out = ['# Robustness report\n',
           f"L-inf eps {eps}/255 ({settings['eps_source']}); "
           f"{settings['num_samples_used']} test samples "
           f"(seed {settings['seed']}); flags tolerate "
           f"{models[0]['summary']['tolerance']:.2f} points. Robust accuracy "
           'in %; a misclassified clean sample counts as broken. The '
           '**worst case** counts a sample as robust only if it survives '
           'every attack at this eps: it is the robust accuracy to quote.\n']
    if plan.autoattack:
        out.append(
            'AutoAttack is the standard version of Croce & Hein (2020): '
            f'APGD-CE, APGD-T and FAB-T with {plan.apgd_steps} iterations, '
            f'then Square with {plan.autoattack_queries} queries, each on '
            'the survivors of the previous ones (`AutoAttack/X`: the stages '
            'up to X).\n')
    if plan.pgd_step_size is None:
        out.append(
            'PGD uses the official NoFrost step size min(1.25 eps, eps + 4) / '
            'steps and a random start: every step count travels the same '
            'total distance, so a flat PGD curve does not mean that PGD has '
            'converged (APGD adapts its step size; `--pgd-step-size` fixes '
            'PGD\'s).\n')
    else:
        out.append(f'PGD uses a fixed step size of '
                   f'{_fmt(plan.pgd_step_size)}/255 and a random start.\n')
    pgd20 = plan.pgd(20) if 20 in plan.pgd_steps else plan.pgd(
        plan.pgd_steps[0])
    header = ['model', 'clean', pgd20, plan.apgd_ce]
    header += ['AutoAttack'] if plan.autoattack else []
    header += ['worst case', f'{pgd20} - worst case', 'flags']
    rows = []
    for m in models:
        s = m['summary']
        row = [m['name'], _pct(s['clean']),
               _pct(s['attacks'][pgd20]['accuracy']),
               _pct(s['attacks'][plan.apgd_ce]['accuracy'])]
        if plan.autoattack:
            row.append(_pct(s['attacks']['AutoAttack']['accuracy']))
        row += [f"**{_pct(s['worst_case'])}**",
                _pct(s['attacks'][pgd20]['accuracy'] - s['worst_case']),
                ', '.join(sorted({f['id'] for f in s['flags']})) or 'none']
        rows.append(row)
    out += ['## Summary\n', _table(header, rows)]

    out.append('## Gradient-masking flags\n')
    for m in models:
        flags = m['summary']['flags']
        out.append(f"**{m['name']}**: " + (
            'no flag.\n' if not flags else f'{len(flags)} flag(s).\n'))
        if flags:
            out.append('\n'.join(f"- `{f['id']}` {f['title']}: "
                                  f"{f['message']}" for f in flags) + '\n')
    out += ['## Accuracy vs attack strength\n',
            '![robust accuracy vs PGD steps](accuracy_vs_steps.png)\n']
    header = ['PGD steps'] + [
        f"{m['name']} ({k} restart{'s' if k > 1 else ''})"
        for m in models for k in sorted({1, plan.restarts})]
    rows = [[s] + [_pct(m['summary']['pgd'][str(s)][str(k)])
                   for m in models for k in sorted({1, plan.restarts})]
            for s in plan.pgd_steps]
    out.append(_table(header, rows))
    out += ['\n## Accuracy vs eps\n',
            f'{plan.apgd_ce} at each eps; a sample broken at a smaller eps '
            'counts as broken at the larger ones.\n',
            '![robust accuracy vs eps](accuracy_vs_eps.png)\n']
    header = ['eps (/255)'] + [m['name'] for m in models]
    rows = [['0 (clean)'] + [_pct(m['summary']['clean']) for m in models]]
    rows += [[_fmt(e)] + [_pct(m['summary']['eps_curve'][_fmt(e)])
                          for m in models] for e in plan.eps_list]
    out.append(_table(header, rows))

    out.append(f'\n## Every attack at eps {eps}/255\n')
    header = ['attack'] + [f"{m['name']} (%, s)" for m in models]
    rows = [[n] + [f"{_pct(m['summary']['attacks'][n]['accuracy'])} "
                   f"({m['summary']['attacks'][n]['seconds']:.1f} s)"
                   for m in models] for n in plan.attack_names]
    rows.append(['**worst case**'] + [f"**{_pct(m['summary']['worst_case'])}**"
                                      for m in models])
    out.append(_table(header, rows))

    out.append('\n## Input gradients (logit margin, correct samples)\n')
    header = ['model', 'correct samples', 'zero gradient', 'vanishing',
              'median eps x L1(grad) / margin']
    rows = [[m['name'], g['num_correct'], g['zero'], g['vanishing'],
             '-' if g['median_ratio'] is None else f"{g['median_ratio']:.3g}"]
            for m in models for g in [m['summary']['gradients']]]
    out.append(_table(header, rows))

    out.append('\n## Models\n')
    for m in models:
        out.append(f"- **{m['name']}**: `{m['config']}`, `{m['checkpoint']}`")
    out.append('\nAll numbers and the per-sample results are in '
               '`report.json`.\n')
    return '\n'.join(out)
