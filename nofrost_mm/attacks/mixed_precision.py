"""Attack steps under autocast: fp16 input gradients that do not underflow.

Under ``--amp`` (``AmpOptimWrapper``) the training attack runs inside the optim
wrapper's autocast context: the forward passes are bf16/fp16, the attack loss
is computed in fp32 (:class:`PGDAttack` casts the logits). bf16 has fp32's
range. fp16 has not: input gradients of a few 1e-6 (large images, deep nets)
flush to zero in the fp16 backward and those pixels would not move.
:class:`GradScaledClassifier` scales the gradient entering the network by a
constant and unscales it at the input, as a loss scaler does for weights; sign
(L-inf) and normalized (L2) steps do not depend on the scale.
"""
from typing import Callable, Optional

import torch
import torch.nn as nn

# headroom for logit gradients |p - y| <= 1 of a summed loss; fp16 overflows
# at 65504
FP16_ATTACK_GRAD_SCALE = 2.**8


def autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    """The dtype autocast casts to on ``device_type`` now, or None when off."""
    if not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by ``scale``, or
    divides it and zeroes overflows (``unscale``)."""

    @staticmethod
    def forward(ctx, x, scale, unscale):
        ctx.scale, ctx.unscale = scale, unscale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        if not ctx.unscale:
            return grad * ctx.scale, None, None
        # an overflow (inf, or nan from inf - inf) leaves that pixel in place
        # this step instead of making the whole adversarial batch nan
        grad = grad / ctx.scale
        return torch.where(torch.isfinite(grad), grad, torch.zeros_like(grad)), None, None


class GradScaledClassifier(nn.Module):
    """Run ``model_fn`` with its input gradient computed at a larger scale.

    The forward pass is ``model_fn(x)`` unchanged; in the backward pass the
    gradient of the logits is multiplied by ``scale`` before it goes through
    the (fp16) network and divided by it at the input, so the attack sees the
    same gradient, without fp16 underflow. Non-finite entries of the input
    gradient (an overflow) are set to 0. :class:`PGDDataPreprocessor` uses
    it whenever its attack runs under fp16 autocast.

    Args:
        model_fn (Callable): Maps [0, 1] images to logits, e.g. a
            :class:`NormalizedClassifier`.
        scale (float): The gradient scale. Defaults to 2**8.

    Example:
        >>> with torch.autocast('cuda', dtype=torch.float16):
        ...     adv = attack(GradScaledClassifier(net), images, labels)
    """

    def __init__(self, model_fn: Callable[[torch.Tensor], torch.Tensor],
                 scale: float = FP16_ATTACK_GRAD_SCALE):
        super().__init__()
        if not isinstance(scale, (int, float)) or scale <= 0:
            raise ValueError(f'GradScaledClassifier: `scale` must be a number > 0, '
                             f'got {scale!r}')
        self.model_fn = model_fn
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``x``; gradients flow back at scale 1."""
        if not (torch.is_grad_enabled() and x.requires_grad):
            return self.model_fn(x)
        logits = self.model_fn(_ScaleGrad.apply(x, self.scale, True))
        return _ScaleGrad.apply(logits, self.scale, False)
