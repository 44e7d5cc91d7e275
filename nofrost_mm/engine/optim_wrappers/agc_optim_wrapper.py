"""Adaptive gradient clipping (AGC) as an mmengine optimizer-wrapper option.

Brock, De, Smith, Simonyan. "High-Performance Large-Scale Image Recognition
Without Normalization", ICML 2021 (https://arxiv.org/abs/2102.06171): each
unit's (output row's) gradient is rescaled so that
``||G_i|| / max(||W_i||, eps) <= clip_factor``; the final classifier is left
unclipped. Normalizer-free nets trained with large batches need it.
"""

from typing import Optional, Sequence, Set

import torch
import torch.nn as nn
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmpretrain.registry import OPTIM_WRAPPERS

from nofrost_mm.utils.device_scalars import update_device_scalar


def _unitwise_norm(x: torch.Tensor) -> torch.Tensor:
    # one norm per output unit (dim 0); vectors and scalars as a whole
    if x.ndim <= 1:
        return torch.linalg.vector_norm(x)
    return torch.linalg.vector_norm(x, dim=tuple(range(1, x.ndim)), keepdim=True)


@torch.no_grad()
def adaptive_clip_grad_(
    params: Sequence[torch.Tensor], clip_factor: float = 0.01, eps: float = 1e-3
) -> torch.Tensor:
    """Clip gradients unit-wise, in place (as timm's ``adaptive_clip_grad``).

    Args:
        params (Sequence[Tensor]): Parameters whose ``.grad`` is clipped.
        clip_factor (float): Largest allowed ratio of gradient norm to
            weight norm per unit. Defaults to 0.01.
        eps (float): Lower bound on weight norms, so zero-initialised
            weights can move. Defaults to 1e-3.

    Returns:
        torch.Tensor: Fraction of units whose gradient was clipped, a 0-dim
        tensor on the gradients' device: counted there, so clipping a
        network of many parameters does not wait for the device once per
        parameter (read it when logging).
    """
    clipped, units = [], 0
    for p in params:
        if p.grad is None:
            continue
        grad = p.grad
        max_norm = _unitwise_norm(p).clamp(min=eps).mul_(clip_factor)
        grad_norm = _unitwise_norm(grad)
        too_big = grad_norm > max_norm
        scale = torch.where(
            too_big, max_norm / grad_norm.clamp(min=1e-6), torch.ones_like(grad_norm)
        )
        grad.mul_(scale)
        clipped.append(too_big.sum())
        units += too_big.numel()
    if not clipped:
        return torch.zeros(())
    device = clipped[0].device
    return torch.stack([c.to(device) for c in clipped]).sum() / max(units, 1)


class AGCMixin:
    """Adds ``clip_grad=dict(type='agc', ...)`` to an mmengine OptimWrapper.

    Other ``clip_grad`` types pass through to mmengine unchanged. AGC options:

    - ``clip_factor`` (float): max ``||G_i|| / max(||W_i||, eps)``.
      Defaults to 0.01.
    - ``eps`` (float): floor on weight norms. Defaults to 1e-3.
    - ``exclude`` (str | Sequence[str]): parameter-name prefixes left
      unclipped (the final classifier). Names are read from the model the
      training loop hands to ``initialize_count_status``. Defaults to
      ``('head.fc',)``, mmpretrain's linear heads.

    The fraction of clipped units is logged as ``train/agc_clip_ratio``.
    """

    def __init__(self, *args, clip_grad: Optional[dict] = None, **kwargs):
        agc = None
        if isinstance(clip_grad, dict) and clip_grad.get('type') == 'agc':
            agc = dict(clip_grad)
            clip_grad = None
        super().__init__(*args, clip_grad=clip_grad, **kwargs)
        self._agc = agc is not None
        if not self._agc:
            return
        agc.pop('type')
        clip_factor = agc.pop('clip_factor', 0.01)
        eps = agc.pop('eps', 1e-3)
        exclude = agc.pop('exclude', ('head.fc',))
        if agc:
            raise TypeError(
                f'clip_grad (type=agc): unknown keys {sorted(agc)}; allowed: '
                'clip_factor, eps, exclude'
            )
        if not clip_factor > 0 or not eps > 0:
            raise ValueError(
                f'clip_grad (type=agc): clip_factor and eps must be > 0, got {clip_factor}, {eps}'
            )
        exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
        # a non-empty dict makes OptimWrapper.step (and AmpOptimWrapper's
        # unscale) call _clip_grad
        self.clip_grad_kwargs = dict(type='agc', clip_factor=clip_factor, eps=eps, exclude=exclude)
        self._agc_excluded: Optional[Set[int]] = None if exclude else set()

    def set_agc_model(self, model: nn.Module) -> None:
        """Resolve ``exclude`` prefixes to parameters of ``model``.

        Args:
            model (nn.Module): The trained model (a DDP wrapper is unwrapped).
        """
        if is_model_wrapper(model):
            model = model.module
        exclude = self.clip_grad_kwargs['exclude']
        named = dict(model.named_parameters())
        excluded = {
            id(p) for name, p in named.items() if any(name.startswith(prefix) for prefix in exclude)
        }
        unmatched = [
            prefix for prefix in exclude if not any(name.startswith(prefix) for name in named)
        ]
        if unmatched:
            roots = sorted({name.rsplit('.', 1)[0] for name in named})
            raise ValueError(
                f'clip_grad.exclude={list(exclude)}: {unmatched} match no '
                f'parameter name; module names with parameters: {roots}'
            )
        self._agc_excluded = excluded

    def initialize_count_status(self, model: nn.Module, init_counts: int, max_counts: int) -> None:
        super().initialize_count_status(model, init_counts, max_counts)
        if self._agc and self.clip_grad_kwargs['exclude']:
            self.set_agc_model(model)

    def _clip_grad(self) -> None:
        if not self._agc:
            return super()._clip_grad()
        if self._agc_excluded is None:
            raise RuntimeError(
                'clip_grad (type=agc) has exclude='
                f"{list(self.clip_grad_kwargs['exclude'])} but no model: the "
                'runner calls initialize_count_status(model, ...); outside a '
                'runner call optim_wrapper.set_agc_model(model) first'
            )
        params = [
            p
            for group in self.optimizer.param_groups
            for p in group['params']
            if p.requires_grad and p.grad is not None and id(p) not in self._agc_excluded
        ]
        ratio = adaptive_clip_grad_(
            params, self.clip_grad_kwargs['clip_factor'], self.clip_grad_kwargs['eps']
        )
        # read on the host when the logger writes it, not every iteration
        update_device_scalar(self.message_hub, 'train/agc_clip_ratio', ratio)


@OPTIM_WRAPPERS.register_module()
class AGCOptimWrapper(AGCMixin, OptimWrapper):
    """mmengine ``OptimWrapper`` accepting ``clip_grad=dict(type='agc')``.

    See :class:`AGCMixin` for the options.

    Args:
        optimizer (Optimizer): The optimizer (built from config).
        clip_grad (dict, optional): ``dict(type='agc', clip_factor=0.01,
            eps=1e-3, exclude=('head.fc',))``, or mmengine's norm/value
            clipping. Defaults to None.
        **kwargs: Other ``OptimWrapper`` arguments.

    Example:
        >>> optim_wrapper = dict(
        ...     type='AGCOptimWrapper',
        ...     optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
        ...     clip_grad=dict(type='agc', clip_factor=0.01))
    """


@OPTIM_WRAPPERS.register_module()
class AmpAGCOptimWrapper(AGCMixin, AmpOptimWrapper):
    """``AmpOptimWrapper`` with AGC; gradients are unscaled before clipping.

    Same arguments as :class:`AGCOptimWrapper` plus ``AmpOptimWrapper``'s
    (``loss_scale``, ``dtype``).
    """
