"""CW-Linf of the official NoFrost evaluation: PGD on the CW margin loss."""

from typing import Optional

from nofrost_mm.registry import ATTACKS
from .pgd import PGDAttack


@ATTACKS.register_module()
class CWLinf(PGDAttack):
    """L-inf PGD on the Carlini-Wagner margin loss with confidence 50.

    The official test script's "CW-Linf" (not torchattacks' L2 ``CW``):
    :class:`PGDAttack` with ``loss='cw'``, ``confidence=50``, ``norm='Linf'``.

    Args:
        eps (float): L-inf radius in pixel units of 255. Defaults to 8.
        steps (int): Number of steps. Defaults to 20.
        step_size (float, optional): Step size in pixel units of 255; None
            means ``min(1.25 * eps, eps + 4) / steps``. Defaults to None.
        random_start (bool): Start from a random point of the ball.
            Defaults to True.
        confidence (float): Margin of the CW loss. Defaults to 50.
        num_classes (int, optional): Expected number of logits.
            Defaults to None.

    Example:
        >>> attack = ATTACKS.build(dict(type='CWLinf', eps=8, steps=20))
    """

    def __init__(
        self,
        eps: float = 8.0,
        steps: int = 20,
        step_size: Optional[float] = None,
        random_start: bool = True,
        confidence: float = 50.0,
        num_classes: Optional[int] = None,
    ):
        super().__init__(
            eps=eps,
            steps=steps,
            step_size=step_size,
            norm='Linf',
            random_start=random_start,
            loss='cw',
            confidence=confidence,
            num_classes=num_classes,
        )
