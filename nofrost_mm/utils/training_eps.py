"""The training eps of a config, which its other attacks follow.

At run time the training eps has one owner, ``PGDDataPreprocessor``: its
``train_eps`` (the configured eps, from the keys read here) and ``eps`` (as
``AdversarialTrainingHook`` scheduled it, through ``schedule``, the one
writer). Robust validation (``AdversarialTrainingHook.val_attack``) and the
catastrophic-overfitting guard read ``train_eps`` there. This module reads
the same keys from a config, before anything is built, for the test attacks
(``test_attacks``): ``data_preprocessor.eps``, the one key of the training
eps (``PGDDataPreprocessor`` refuses an eps in its attack config).
"""

import copy
from typing import Any, List, Optional


def _get(d: Any, *keys: str) -> Any:
    # dicts, ConfigDicts and mmengine's Config (not a dict subclass)
    for k in keys:
        if isinstance(d, str):
            return None
        try:
            d = d[k]
        except (KeyError, TypeError, IndexError, AttributeError):
            return None
    return d


def training_eps(cfg: dict) -> Optional[float]:
    """The training eps (pixel units of 255) of a config, or None.

    Args:
        cfg (dict | Config): A loaded config.
    """
    for pre in (_get(cfg, 'data_preprocessor'), _get(cfg, 'model', 'data_preprocessor')):
        eps = _get(pre, 'eps')
        if isinstance(eps, (int, float)) and not isinstance(eps, bool):
            return eps
    return None


def follow_training_eps(attacks: Optional[list], eps: Optional[float]) -> Optional[List]:
    """Copies of attack configs with ``eps`` filled in where they name none.

    Entries of a ``RobustnessReportLoop`` (the attack under ``attack``) are
    filled inside; attack names (strings) are left as they are.

    Args:
        attacks (list, optional): Attack configs (dicts or names).
        eps (float, optional): The training eps; None changes nothing.
    """
    if attacks is None or eps is None:
        return attacks
    out = []
    for attack in attacks:
        attack = copy.deepcopy(attack)
        inner = attack.get('attack') if isinstance(attack, dict) else None
        target = inner if isinstance(inner, dict) else attack
        if isinstance(target, dict) and 'eps' not in target:
            target['eps'] = eps
        out.append(attack)
    return out
