"""``test_attacks`` of a config as the RobustTestLoop it stands for.

The one translation: :meth:`NoFrostRunner.from_cfg` and the
distribution-shift table apply it, so every entry point that builds the runner from the config (this repository's
``tools/test.py``, mmpretrain's own ``tools/test.py``, a script's
``RUNNERS.build(cfg)``) evaluates the attacks the config names.
"""

from typing import Optional

from nofrost_mm.attacks import with_eps
from nofrost_mm.utils import training_eps
from .robustness_report.attack_entries import REPORT_KEYS, wrap_report_entry

# metrics that understand RobustTestLoop's per-sample results (the
# robustness report's RobustnessRecords is a RobustAccuracy that keeps them)
ROBUST_METRICS = ('RobustAccuracy', 'RobustnessRecords', 'CorruptionAccuracy')
# test loops that take `attacks` and `num_samples` (and resume)
ROBUST_LOOPS = ('RobustTestLoop', 'RobustnessReportLoop')


def _report_entries(attacks) -> list:
    return [
        a for a in attacks or () if isinstance(a, dict) and any(key in a for key in REPORT_KEYS)
    ]


def robust_test_cfg(cfg, num_samples: Optional[int] = None) -> None:
    """Turn ``test_attacks`` / ``num_samples`` into a RobustTestLoop, in place.

    ``test_attacks = [dict(type='PGD', eps=8, steps=20), ...]`` (top level of
    the config, or ``--attacks`` / ``--cfg-options test_attacks=PGD,FGSM``)
    becomes ``test_cfg.attacks`` (of the config's own robust loop, else of a
    RobustTestLoop, or of a RobustnessReportLoop where an entry has
    ``restarts`` or ``after``), each entry without an eps (a bare type name
    included, if its attack has one) at the training eps
    (:func:`training_eps`), with the step that follows it
    (:func:`nofrost_mm.attacks.with_eps`); RobustAccuracy then replaces the test
    evaluator (it also reports clean accuracy) unless the config already
    uses the plug-in's robust metrics. A config without either is left as
    it is.

    Args:
        cfg (Config): The whole config; ``test_attacks`` is popped.
        num_samples (int, optional): Evaluate a fixed random subset of this
            many test samples (``test_cfg.num_samples``). Defaults to None.
    """
    # the test attacks follow the training eps unless they name their own
    attacks = cfg.pop('test_attacks', None)
    if isinstance(attacks, (str, dict)):  # `--cfg-options test_attacks=PGD`
        attacks = [attacks]
    loop = (cfg.get('test_cfg') or {}).get('type')
    is_robust = loop in ROBUST_LOOPS
    if attacks is None and is_robust:
        # a config's own robust loop: its attacks follow the same rules
        attacks = (cfg.get('test_cfg') or {}).get('attacks')
    eps = training_eps(cfg)
    if attacks is not None and eps is not None:
        # a bare type name (`--attacks FGSM`) names no eps either
        attacks = [with_eps(a, eps) for a in attacks]
    if attacks is not None:
        attacks = [wrap_report_entry(a) for a in attacks]
    if attacks is None and num_samples is None and not is_robust:
        return
    test_cfg = dict(cfg.get('test_cfg') or {})
    # a config's own robust loop is kept; entries with restarts or after
    # need the report loop
    report_entries = _report_entries(attacks)
    if loop == 'RobustTestLoop' and report_entries:
        raise ValueError(
            f"test_attacks {report_entries}: {'/'.join(REPORT_KEYS)} entries need "
            "test_cfg.type='RobustnessReportLoop' (or no test_cfg.type); this "
            "config's test_cfg.type is 'RobustTestLoop'"
        )
    if not is_robust:
        loop = 'RobustnessReportLoop' if report_entries else 'RobustTestLoop'
    test_cfg['type'] = loop
    if attacks is not None:
        test_cfg['attacks'] = list(attacks)
    if num_samples is not None:
        test_cfg['num_samples'] = num_samples
    cfg.test_cfg = test_cfg
    evaluator = cfg.get('test_evaluator')
    metrics = evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]
    if not any(isinstance(m, dict) and m.get('type') in ROBUST_METRICS for m in metrics):
        cfg.test_evaluator = dict(type='RobustAccuracy')
