"""Gradient-masking guard: stronger attacks must not leave more samples correct."""

import math
from typing import List, Optional, Sequence

# robust-accuracy ordering used by the gradient-masking guard: at the same
# norm and eps, an attack of a higher tier should never leave more samples
# correct than one of a lower tier (nor more steps of the same attack)
SINGLE_STEP = ('FGSM', 'FFGSM')
ITERATIVE = (
    'PGD',
    'PGDAttack',
    'CWLinf',
    'BIM',
    'MIFGSM',
    'APGD',
    'APGDT',
    'APGDAttack',
    'UPGD',
    'EOTPGD',
    'NIFGSM',
    'VMIFGSM',
    'VNIFGSM',
    'SINIFGSM',
    'PGDL2',
)
ENSEMBLE = ('AutoAttack',)


def gradient_masking_warnings(
    attacks: Sequence[tuple],
    metrics: dict,
    prefix: Optional[str] = 'robust',
    tolerance: float = 0.0,
) -> List[str]:
    """Messages for stronger attacks that leave more samples correct.

    Args:
        attacks (Sequence[tuple]): ``(name, attack, cfg)`` from
            :func:`build_attacks`.
        metrics (dict): Accuracies in percent under ``prefix/name``.
        prefix (str, optional): Metric prefix. Defaults to 'robust'.
        tolerance (float): Points a stronger attack may exceed a weaker one
            by without a warning. Defaults to 0.

    Returns:
        list[str]: One message per suspicious pair, naming both numbers.
    """
    specs = []
    for name, attack, cfg in attacks:
        key = f'{prefix}/{name}' if prefix else name
        eps = getattr(attack, 'eps', None)
        tier = (
            1
            if cfg['type'] in SINGLE_STEP
            else 2
            if cfg['type'] in ITERATIVE
            else 3
            if cfg['type'] in ENSEMBLE
            else None
        )
        if key in metrics and eps is not None and tier is not None:
            specs.append(
                dict(
                    name=name,
                    type=cfg['type'],
                    tier=tier,
                    norm=getattr(attack, 'norm', 'Linf'),
                    eps=float(eps),
                    steps=getattr(attack, 'steps', None) or 0,
                    acc=metrics[key],
                )
            )
    msgs = []
    for weak in specs:
        for strong in specs:
            if weak['norm'] != strong['norm'] or not math.isclose(weak['eps'], strong['eps']):
                continue
            stronger = strong['tier'] > weak['tier'] or (
                strong['type'] == weak['type'] and strong['steps'] > weak['steps']
            )
            if stronger and strong['acc'] > weak['acc'] + tolerance:
                msgs.append(
                    f"possible gradient masking: robust accuracy under "
                    f"{strong['name']} ({strong['acc']:.2f}%) is above that "
                    f"under the weaker {weak['name']} ({weak['acc']:.2f}%) at "
                    f"{weak['norm']} eps {weak['eps']:g}/255; check the "
                    "attacks (more steps, restarts, AutoAttack) before "
                    "trusting these numbers"
                )
    return msgs
