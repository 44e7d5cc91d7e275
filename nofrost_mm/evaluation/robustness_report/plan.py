"""The attack plan of the robustness report: defaults, eps lists, which attacks run."""

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from nofrost_mm.attacks import attack_name, attack_settings, build_attacks
from nofrost_mm.utils import training_eps
from .attack_entries import restart_name, split_report_keys

DEFAULT_PGD_STEPS = (5, 10, 20, 50, 100)
DEFAULT_RESTARTS = 5
DEFAULT_APGD_STEPS = 100
DEFAULT_SQUARE_QUERIES = 1000
# Square's budget inside standard AutoAttack
AUTOATTACK_SQUARE_QUERIES = 5000
# default eps curve, in multiples of the report's eps
EPS_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
# attacks that only query the model's outputs
BLACK_BOX = ('Square', 'SquareAttack', 'OnePixel', 'Pixle')
# a first-order margin change over the eps ball below this fraction of the
# margin counts as a vanishing gradient
VANISHING_RATIO = 1e-3


def config_eps(cfg) -> Optional[float]:
    """The eps (pixel units of 255) of a config's attacks, if any.

    The training eps (:func:`nofrost_mm.utils.training_eps`), which the
    config's other attacks follow; without a training attack, the
    ``val_attack`` of a hook, then the first ``test_attacks`` /
    ``test_cfg.attacks`` entry with an eps.

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

    candidates = [training_eps(cfg)]
    candidates += [get(h, 'val_attack', 'eps') for h in cfg.get('custom_hooks') or []]
    tests = list(cfg.get('test_attacks') or []) + list(get(cfg, 'test_cfg', 'attacks') or [])
    candidates += [get(a, 'eps') for a in tests]
    for eps in candidates:
        if isinstance(eps, (int, float)) and not isinstance(eps, bool):
            return float(eps)
    return None


def configs_eps(cfgs: Dict[str, object], option: str = '--eps') -> Optional[float]:
    """The one eps (:func:`config_eps`) of several configs, or None.

    The analysis tools compare models at the eps they were trained at
    unless told another.

    Args:
        cfgs (dict): Loaded configs by file name.
        option (str): The command-line option that sets another eps, named
            in the error. Defaults to '--eps'.

    Returns:
        float | None: The eps, or None when no config has an attack.

    Raises:
        ValueError: The configs train at different eps.
    """
    found = {name: config_eps(cfg) for name, cfg in cfgs.items()}
    values = {v for v in found.values() if v is not None}
    if len(values) > 1:
        raise ValueError(
            f'the configs train at different eps {found}: pass '
            f'{option} to compare the models at one eps'
        )
    return values.pop() if values else None


def default_eps_list(eps: float) -> List[float]:
    """``EPS_FACTORS`` times ``eps``, capped at 255 (the L-inf maximum)."""
    return sorted({min(255.0, round(f * eps, 4)) for f in EPS_FACTORS})


def check_eps_list(values: Sequence[float]) -> List[float]:
    """Sorted eps values (pixel units of 255), or a clear error.

    Args:
        values (Sequence[float]): Values for the eps curve.

    Returns:
        list[float]: The values, sorted.
    """
    values = list(values)
    if len(values) < 2:
        raise ValueError(f'--eps-list needs at least 2 values for a curve, got {values}')
    for v in values:
        if (
            not isinstance(v, (int, float))
            or isinstance(v, bool)
            or not 0 < v <= 255
            or math.isnan(v)
        ):
            raise ValueError(
                f'--eps-list: {v!r} is not in (0, 255] (pixel units of 255, e.g. 8 for 8/255)'
            )
    if len(set(values)) != len(values):
        raise ValueError(f'--eps-list: repeated values in {values}')
    return sorted(float(v) for v in values)


def fmt_eps(eps: float) -> str:
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
            raise ValueError(f'eps must be in (0, 255] (pixel units of 255), got {self.eps!r}')
        self.eps_list = check_eps_list(self.eps_list)
        steps = list(self.pgd_steps)
        if (
            not steps
            or any(not isinstance(s, int) or s < 1 for s in steps)
            or len(set(steps)) != len(steps)
        ):
            raise ValueError(f'PGD steps must be distinct ints >= 1, got {steps}')
        self.pgd_steps = sorted(steps)
        for key in ('restarts', 'apgd_steps'):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ValueError(f'{key} must be an int >= 1, got {getattr(self, key)!r}')
        if self.pgd_step_size is not None and (
            not isinstance(self.pgd_step_size, (int, float))
            or isinstance(self.pgd_step_size, bool)
            or not 0 < self.pgd_step_size <= 255
        ):
            raise ValueError(
                'pgd_step_size must be None (the official rule) '
                'or in (0, 255] (pixel units of 255), got '
                f'{self.pgd_step_size!r}'
            )
        if not isinstance(self.square_queries, int) or self.square_queries < 0:
            raise ValueError(f'square_queries must be an int >= 0, got {self.square_queries!r}')
        if not isinstance(self.autoattack_queries, int) or self.autoattack_queries < 1:
            raise ValueError(
                f'autoattack_queries must be an int >= 1, got {self.autoattack_queries!r}'
            )
        self.cfgs = self._attack_cfgs()
        # every config is checked (names, kwargs, torchattacks' own checks)
        # here, before any model is built
        plain, _, _ = split_report_keys(self.cfgs)
        self.built = {name: (attack, cfg) for name, attack, cfg in build_attacks(plain)}

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
        return f'{self.apgd_ce}@{fmt_eps(eps)}'

    def _attack_cfgs(self) -> List[dict]:
        """Entries of :class:`RobustnessReportLoop`, in running order."""
        eps = self.eps
        step = {} if self.pgd_step_size is None else dict(step_size=self.pgd_step_size)
        entries = [
            dict(
                name=self.pgd(s),
                restarts=self.restarts,
                attack=dict(type='PGDAttack', eps=eps, steps=s, **step),
            )
            for s in self.pgd_steps
        ]
        for loss in ('ce', 'dlr'):
            entries.append(
                dict(
                    name=f'APGD-{loss.upper()}-{self.apgd_steps}',
                    attack=dict(
                        type='APGDAttack', eps=eps, steps=self.apgd_steps, loss=loss, n_restarts=1
                    ),
                )
            )
        if self.square_queries:
            entries.append(
                dict(
                    name=f'Square-{self.square_queries}',
                    attack=dict(type='SquareAttack', eps=eps, n_queries=self.square_queries),
                )
            )
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
            entries.append(
                dict(
                    name=self.eps_name(e),
                    after=prev,
                    attack=dict(
                        type='APGDAttack', eps=e, steps=self.apgd_steps, loss='ce', n_restarts=1
                    ),
                )
            )
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
        stages = [
            (
                'APGD-T',
                dict(type='APGDAttack', eps=eps, steps=steps, loss='dlr-targeted', n_restarts=1),
            ),
            ('FAB-T', dict(type='FABAttack', eps=eps, steps=steps)),
            ('Square', dict(type='SquareAttack', eps=eps, n_queries=self.autoattack_queries)),
        ]
        entries, prev = [], self.apgd_ce
        for stage, attack in stages:
            name = 'AutoAttack' if stage == 'Square' else f'AutoAttack/{stage}'
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
        return (
            getattr(attack, 'norm', 'Linf') == 'Linf' and eps is not None and eps <= self.eps + 1e-9
        )

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
        return [n for n in self.attack_names if self.at_report_eps(self._base(n))] + curve

    @property
    def black_box(self) -> List[str]:
        """Standalone black-box results."""
        return [
            n
            for n in self.attack_names
            if n not in self.chained and self.built[self._base(n)][1]['type'] in BLACK_BOX
        ]

    @property
    def white_box(self) -> List[str]:
        """Standalone white-box results at the report's eps."""
        # AutoAttack contains Square: it is neither
        return [
            n
            for n in self.attack_names
            if n not in self.black_box
            and n not in self.chained
            and self.built[self._base(n)][1]['type'] != 'AutoAttack'
            and self.at_report_eps(self._base(n))
        ]

    @property
    def settings(self) -> Dict[str, dict]:
        """What each attack runs with (eps, step, steps, restarts, ...; see
        :func:`nofrost_mm.attacks.attack_settings`), by result name."""
        restarts = {e['name']: e.get('restarts', 1) for e in self.cfgs}
        return {
            name: attack_settings(attack, restarts[name])
            for name, (attack, _) in self.built.items()
        }

    def set_test(
        self, cfg, num_samples: int, seed: int = 0, resume: bool = False, fp16: bool = False
    ) -> None:
        """Make a model config's test the report's loop and metric.

        Whatever the config tests: its ``test_attacks`` would become the
        loop's attacks and ``RobustAccuracy`` its metric when the runner is
        built (``NoFrostRunner.from_cfg``).

        Args:
            cfg (Config): The model's config (changed in place).
            num_samples (int): The seeded test subset.
            seed (int): Seed of the subset and of the attacks. Defaults to 0.
            resume (bool): Continue the per-batch results of a killed
                report. Defaults to False.
            fp16 (bool): Attacks under autocast where as strong as in fp32.
                Defaults to False.
        """
        cfg.pop('test_attacks', None)
        cfg.test_cfg = dict(
            type='RobustnessReportLoop',
            attacks=self.cfgs,
            num_samples=num_samples,
            seed=seed,
            # the report runs RobustTestLoop's ordering guard itself, over the
            # standalone attacks only (the chained eps curve would mislead it)
            masking_tolerance=float('inf'),
            # per-batch results in each model's run folder; resume continues
            state_dir='auto',
            resume=resume,
            fp16=fp16,
        )
        cfg.test_evaluator = dict(type='RobustnessRecords', worst_case_over=self.worst_case_over)

    def to_dict(self) -> dict:
        return dict(
            eps=self.eps,
            eps_list=list(self.eps_list),
            pgd_steps=list(self.pgd_steps),
            restarts=self.restarts,
            pgd_step_size=self.pgd_step_size,
            apgd_steps=self.apgd_steps,
            square_queries=self.square_queries,
            autoattack=self.autoattack,
            autoattack_queries=self.autoattack_queries,
            attacks=self.cfgs,
            settings=self.settings,
        )
