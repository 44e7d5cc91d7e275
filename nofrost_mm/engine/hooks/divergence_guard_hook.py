"""Stop (or skip the step) when the loss or the gradients stop being finite."""

import math
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from mmpretrain.registry import HOOKS

from nofrost_mm.utils.checkpoint_reader import latest_complete_checkpoint
from nofrost_mm.utils.config_checks import check_choice, check_number

DIVERGENCE_ACTIONS = ('stop', 'skip')


@HOOKS.register_module()
class DivergenceGuardHook(Hook):
    """Guard training against NaN/Inf losses and gradients.

    Before every optimizer step the gradients are checked; a non-finite one
    (from a NaN/Inf loss, or an overflow in backward) means the step would
    write NaN into the weights, so the gradients are dropped (``grad = None``:
    torch optimizers then leave the weights, momentum and step counts alone).
    After the iteration, the logged loss terms are checked too. Then:

    - ``action='stop'``: training ends with :class:`FloatingPointError`
      naming the iteration, every loss term and the last good checkpoint
      (the weights in memory are those before the bad step).
    - ``action='skip'``: the step is skipped with a warning (and the
      floating-point buffers the bad forward pass moved, e.g. BN running
      statistics, are restored) and training goes on; after
      ``max_consecutive_skips`` bad iterations in a row it stops as above
      (a run that keeps diverging is not worth continuing).

    The gradient check runs after DDP's all-reduce, so every rank takes the
    same decision. Parameter schedulers still advance on a skipped iteration,
    and the logger's smoothed loss of that window shows the non-finite value.
    With ``AmpOptimWrapper`` the loss scaler already skips overflowed steps;
    a non-finite loss is still caught here.

    Args:
        action (str): ``'stop'`` or ``'skip'``. Defaults to ``'stop'``.
        max_consecutive_skips (int): With ``action='skip'``, how many bad
            iterations in a row are tolerated. Defaults to 10.

    Example:
        >>> custom_hooks = [dict(type='DivergenceGuardHook', action='skip',
        ...                      max_consecutive_skips=5)]
    """

    priority = 'HIGH'  # before the logger reports the bad iteration

    def __init__(self, action: str = 'stop', max_consecutive_skips: int = 10):
        check_choice('DivergenceGuardHook.action', action, DIVERGENCE_ACTIONS)
        check_number(
            'DivergenceGuardHook.max_consecutive_skips',
            max_consecutive_skips,
            integer=True,
            min_value=1,
        )
        self.action = action
        self.max_consecutive_skips = max_consecutive_skips
        self.bad_grads = False
        self.skipped = 0  # in total, for the log
        self.consecutive = 0
        self._handles = []
        self._buffers = []

    def before_train(self, runner) -> None:
        wrapper = runner.optim_wrapper
        optimizers = (
            [w.optimizer for w in wrapper.values()]
            if isinstance(wrapper, OptimWrapperDict)
            else [wrapper.optimizer]
        )
        self._handles = [opt.register_step_pre_hook(self._check_grads) for opt in optimizers]

    def after_train(self, runner) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self.action == 'skip':
            # a bad forward has already moved BN running statistics: keep a
            # copy to undo it (buffers are small next to the weights)
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            self._buffers = [
                (b, b.detach().clone()) for b in model.buffers() if b.is_floating_point()
            ]

    def _check_grads(self, optimizer, args, kwargs) -> None:
        grads = [
            p.grad
            for group in optimizer.param_groups
            for p in group['params']
            if p.grad is not None
        ]
        if not grads:
            return
        finite = torch.stack([torch.isfinite(g).all() for g in grads]).all().item()
        if not finite:
            self.bad_grads = True
            for group in optimizer.param_groups:
                for p in group['params']:
                    p.grad = None  # the step leaves this parameter alone

    def after_train_iter(
        self, runner, batch_idx: int, data_batch=None, outputs: Optional[dict] = None
    ):
        terms = {
            k: float(v)
            for k, v in (outputs or {}).items()
            if isinstance(v, (float, int, torch.Tensor))
            and (not isinstance(v, torch.Tensor) or v.numel() == 1)
        }
        bad_terms = [k for k, v in terms.items() if not math.isfinite(v)]
        bad, self.bad_grads = bool(bad_terms) or self.bad_grads, False
        if not bad:
            self.consecutive = 0
            return
        self.consecutive += 1
        iteration = runner.iter + 1
        shown = ', '.join(f'{k}={v:.4g}' for k, v in terms.items()) or 'none'
        what = f'non-finite {", ".join(bad_terms)}' if bad_terms else 'non-finite gradients'
        where = f'iteration {iteration} (epoch {runner.epoch + 1})'
        if self.action == 'skip' and self.consecutive <= self.max_consecutive_skips:
            self.skipped += 1
            with torch.no_grad():
                for buffer, saved in self._buffers:
                    buffer.copy_(saved)
            runner.logger.warning(
                f'DivergenceGuardHook: {what} at {where}; loss terms: {shown}. '
                f'Step skipped ({self.consecutive} in a row, '
                f'{self.skipped} in total).'
            )
            return
        # a complete file, not whatever last_checkpoint names
        last = latest_complete_checkpoint(runner.work_dir, runner.logger.warning)
        resume = (
            f'Last good checkpoint: {last}. Lower the learning rate '
            '(or use AGC / a warm-up) and resume from it.'
            if last
            else 'No checkpoint saved yet. Lower the learning rate (or use '
            'AGC / a warm-up) and start again.'
        )
        streak = (
            f' after {self.consecutive} bad iterations in a row '
            f'(max_consecutive_skips={self.max_consecutive_skips})'
            if self.action == 'skip'
            else ''
        )
        raise FloatingPointError(
            f'Training diverged: {what} at {where}{streak}; loss terms: '
            f'{shown}. The bad step was not applied. {resume}'
        )
