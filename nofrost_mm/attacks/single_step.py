"""Single-step attacks for fast adversarial training, on the PGD engine.

- :class:`FGSMRS`: FGSM with a random start, "Fast is better than free"
  (Wong, Rice, Kolter, ICLR 2020; locuslab/fast_adversarial).
- :class:`NFGSM`: noisy FGSM without projection, "Make some noise"
  (de Jorge et al., NeurIPS 2022; pdejorge/N-FGSM).

Both are :class:`PGDAttack` with one step: they share its losses, label
handling, checks and fp32 loss under autocast, and only change the start
(:meth:`_random_start`), the step size rule and the projection
(:meth:`_step`). Their step size and noise follow ``eps`` when it changes
(the eps warm-up of :class:`AdversarialTrainingHook`).
"""

from typing import Optional

import torch

from nofrost_mm.registry import ATTACKS
from nofrost_mm.utils.config_checks import check_bool, check_number
from .pgd import PGDAttack


class _SingleStep(PGDAttack):
    """One L-inf sign step with a step size proportional to eps."""

    # training attacks of one step: no fp32 polish under bf16 (it would double
    # their cost; as strong as fp32 without it, tests/attacks/
    # test_mixed_precision_strength.py)
    fp32_parts = {}

    def __init__(
        self,
        eps: float,
        step_ratio: float,
        step_size: Optional[float],
        random_start: bool,
        targeted: bool,
        loss: str,
        num_classes: Optional[int],
    ):
        # the step size as a multiple of eps
        check_number(
            f'{type(self).__name__}.step_ratio', step_ratio, min_value=0, min_inclusive=False
        )
        super().__init__(
            eps=eps,
            steps=1,
            step_size=step_size,
            norm='Linf',
            random_start=random_start,
            targeted=targeted,
            loss=loss,
            num_classes=num_classes,
        )
        self.step_ratio = float(step_ratio)

    @property
    def steps(self) -> int:
        """Always 1 (single-step attack)."""
        return 1

    @steps.setter
    def steps(self, value: int) -> None:
        if value != 1:
            raise ValueError(
                f'{type(self).__name__} is a single-step attack: `steps` must stay 1, '
                f'got {value!r} (AdversarialTrainingHook.steps_schedule does not '
                'apply to it)'
            )

    def get_step_size(self) -> float:
        """Step size in pixel units of 255: ``step_size``, else ``step_ratio * eps``."""
        if self.step_size is not None:
            return self.step_size
        return self.step_ratio * self.eps


@ATTACKS.register_module()
class FGSMRS(_SingleStep):
    """FGSM with a random start (FGSM-RS, Wong et al. 2020).

    ``delta ~ U(-eps, eps)`` clipped to the image range (``clip_start``); one
    step ``delta <- clip_[-eps, eps](delta + alpha * sign(grad))``, clipped to
    the image range, with ``alpha = step_ratio * eps`` (1.25 eps in the
    paper: 10/255 at 8/255). The result is within eps of the image.
    ``random_start=False`` is plain FGSM (from the clean image; with
    ``step_ratio=1`` the classic one), the setting prone to catastrophic
    overfitting.

    Args:
        eps (float): L-inf radius in pixel units of 255 (8 is 8/255).
            Defaults to 8.
        step_ratio (float): Step size as a multiple of eps. Defaults to 1.25.
        step_size (float, optional): A fixed step size in pixel units of 255
            instead (it does not follow eps warm-up). Defaults to None.
        random_start (bool): Start from a uniform point of the eps-ball.
            Defaults to True.
        clip_start (bool): Clip the random start to the image range before
            the gradient is taken. False takes it at the unclipped point, as
            fast_adversarial's MNIST recipe (``MNIST/train_mnist.py``; its
            CIFAR-10 recipe clips): on MNIST's black background half of the
            clipped starts are 0, a different (and there less stable)
            training attack. The result is clipped either way.
            Defaults to True.
        targeted (bool): As :class:`PGDAttack`. Defaults to False.
        loss (str): 'ce', 'cw' or 'kl', as :class:`PGDAttack`.
            Defaults to 'ce'.
        num_classes (int, optional): As :class:`PGDAttack`. Defaults to None.

    Example:
        >>> data_preprocessor = dict(type='PGDDataPreprocessor', eps=8,
        ...                          attack=dict(type='FGSMRS'))
    """

    def __init__(
        self,
        eps: float = 8.0,
        step_ratio: float = 1.25,
        step_size: Optional[float] = None,
        random_start: bool = True,
        clip_start: bool = True,
        targeted: bool = False,
        loss: str = 'ce',
        num_classes: Optional[int] = None,
    ):
        check_bool('FGSMRS.random_start', random_start)
        check_bool('FGSMRS.clip_start', clip_start)
        super().__init__(eps, step_ratio, step_size, random_start, targeted, loss, num_classes)
        self.clip_start = clip_start

    def _random_start(
        self, images: torch.Tensor, eps: float, keys: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        if self.clip_start:
            return super()._random_start(images, eps, keys)
        return self._uniform(images, eps, keys)

    def __repr__(self) -> str:
        return (
            f'FGSMRS(eps={self.eps}, step_size={self.get_step_size()}, '
            f'random_start={self.random_start}, clip_start={self.clip_start}, '
            f'loss={self.loss!r})'
        )


@ATTACKS.register_module()
class NFGSM(_SingleStep):
    """Noisy FGSM without projection (N-FGSM, de Jorge et al. 2022).

    ``eta ~ U(-k eps, k eps)`` clipped to the image range (``k =
    noise_ratio``); one step ``delta = eta + alpha * sign(grad)`` with
    ``alpha = step_ratio * eps``, clipped to the image range only: there is
    **no** projection to the eps-ball, so the perturbation can reach
    ``(k + step_ratio) * eps`` (3 eps with the defaults). The paper's
    defaults are k = 2 and alpha = eps (k = 4 for wide nets at 16/255).

    Args:
        eps (float): The attack's eps in pixel units of 255; noise and step
            scale with it. Defaults to 8.
        noise_ratio (float): k, the noise half-width as a multiple of eps;
            0 starts from the clean image. Defaults to 2.
        step_ratio (float): Step size as a multiple of eps. Defaults to 1.
        step_size (float, optional): A fixed step size in pixel units of 255
            instead (it does not follow eps warm-up). Defaults to None.
        targeted (bool): As :class:`PGDAttack`. Defaults to False.
        loss (str): 'ce', 'cw' or 'kl', as :class:`PGDAttack` (the noise
            gives the KL loss of TRADES a non-zero gradient). Defaults to 'ce'.
        num_classes (int, optional): As :class:`PGDAttack`. Defaults to None.

    Example:
        >>> # the paper's setting for wide nets at 16/255
        >>> data_preprocessor = dict(
        ...     type='PGDDataPreprocessor', eps=16,
        ...     attack=dict(type='NFGSM', noise_ratio=4))
    """

    def __init__(
        self,
        eps: float = 8.0,
        noise_ratio: float = 2.0,
        step_ratio: float = 1.0,
        step_size: Optional[float] = None,
        targeted: bool = False,
        loss: str = 'ce',
        num_classes: Optional[int] = None,
    ):
        # the noise half-width as a multiple of eps
        check_number('NFGSM.noise_ratio', noise_ratio, min_value=0)
        super().__init__(eps, step_ratio, step_size, True, targeted, loss, num_classes)
        self.noise_ratio = float(noise_ratio)

    def __repr__(self) -> str:
        return (
            f'NFGSM(eps={self.eps}, noise_ratio={self.noise_ratio}, '
            f'step_size={self.get_step_size()}, loss={self.loss!r})'
        )

    def _random_start(
        self, images: torch.Tensor, eps: float, keys: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        delta = self._uniform(images, self.noise_ratio * eps, keys)
        return (images + delta).clamp_(0, 1) - images

    def _step(
        self, delta: torch.Tensor, grad: torch.Tensor, alpha: float, eps: float
    ) -> torch.Tensor:
        # no projection to the eps-ball: PGDAttack clips to [0, 1] afterwards
        return delta + alpha * grad.sign()
