"""APGD (Croce & Hein 2020), L-inf, with the reference's schedule, on batched rows.

The algorithm and its constants are those of ``APGDAttack`` and
``APGDAttack_targeted`` in fra31/auto-attack (``autopgd_base.py``): a random
start at the L-inf sphere's scale, step size ``2 * eps`` halved at the
checkpoints (22%, then every 3% less, at least 6% of the iterations) where
the loss oscillated (``rho``) or stopped improving, momentum 0.75, restarts
from the best point. Where the reference runs target classes and restarts one
after another on the survivors, here every (target, restart) of every sample
is one row of a single batch: rows are independent, so a sample is broken
exactly when the reference's sequence would break it (with other random
starts), and the CPU works on one large batch instead of nine small ones. A
sample leaves the batch, all its rows at once, at the first iterate that
misclassifies it, which is the iterate returned for it.
"""

from typing import Union

import torch
import torch.nn.functional as F

from nofrost_mm.registry import ATTACKS
from nofrost_mm.utils.sample_random import sample_uniform
from ..mixed_precision import confirm_misclassified, fp32_under_autocast
from .autoattack_member import (
    AutoAttackMember,
    RowBatch,
    RowProgress,
    check_int,
    check_target_batch,
    like,
    rows_per_pass,
    run_rows,
)

# stream ids of the per-sample random numbers (sample_random)
APGD_STREAM = 0x41504744


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The reference's untargeted DLR loss (per row)."""
    z, _ = logits.sort(dim=1)
    top_is_y = logits.argmax(dim=1) == y
    zy = logits.gather(1, y[:, None])[:, 0]
    other = torch.where(top_is_y, z[:, -2], z[:, -1])
    return -(zy - other) / (z[:, -1] - z[:, -3] + 1e-12)


def dlr_targeted_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The reference's targeted DLR loss (per row)."""
    z, _ = logits.sort(dim=1)
    zy = logits.gather(1, y[:, None])[:, 0]
    zt = logits.gather(1, target[:, None])[:, 0]
    return -(zy - zt) / (z[:, -1] - 0.5 * (z[:, -3] + z[:, -4]) + 1e-12)


def target_classes(clean_logits: torch.Tensor, n_target_classes: int) -> torch.Tensor:
    """(N, T): the 2nd..(T+1)-th most likely classes on the clean images.

    As the reference, ``output.sort(dim=1)[1][:, -target_class]`` for
    ``target_class`` in 2..T+1.
    """
    order = clean_logits.sort(dim=1)[1]
    return torch.stack([order[:, -t] for t in range(2, n_target_classes + 2)], 1)


@ATTACKS.register_module()
class APGDAttack(AutoAttackMember):
    """APGD-CE, APGD-DLR and APGD-T (targeted DLR) with the reference settings.

    Follows Croce & Hein's ``autopgd_base.py`` (fra31/auto-attack) step by
    step for L-inf; every (target class, restart) of every sample runs as one
    row of a batch (see the module docstring), and random starts are drawn
    per sample from ``keys`` (:mod:`nofrost_mm.utils.sample_random`), so a
    sample's result does not depend on the other samples of its batch.
    Called as ``adv = attack(model, images, labels, keys=None)``; the model
    is used as given (mode and parameters are the caller's, see
    :func:`attack_context`). Under fp16 autocast it runs through a
    :class:`PrecisionSafeClassifier` with fp32 decisions; under bf16 in fp32
    (one log line).

    Args:
        eps (float): L-inf radius in pixel units of 255. Defaults to 8.
        steps (int): Iterations (the reference's ``n_iter``). Defaults to 100.
        n_restarts (int): Random restarts. Defaults to 1.
        loss (str): 'ce' or 'dlr' (untargeted), or 'dlr-targeted' (APGD-T,
            the targeted DLR loss against each of the ``n_target_classes``
            most likely other classes of the clean image). Defaults to 'ce'.
        n_target_classes (int): Targets of APGD-T. Defaults to 9.
        rho (float): Oscillation threshold of the step-size checkpoints.
            Defaults to 0.75.
        norm (str): Only 'Linf'. Defaults to 'Linf'.
        seed (int): Keys of the random starts when the call gives none.
            Defaults to 0.
        target_batch (int | str, optional): At most this many rows
            (images) per forward pass: targets and restarts then run in
            slices, in the reference's order, later slices only on the
            survivors (bounds memory on large models; which samples break
            does not change). 'auto': rows of at most 2**25 input elements
            (222 at 224 px; a CIFAR batch's 9 targets in one pass). None runs
            all rows at once. Defaults to 'auto'.

    Example:
        >>> attack = APGDAttack(eps=8, loss='dlr-targeted')
        >>> adv = attack(normalized_classifier, images, labels, keys=keys)
    """

    LOSSES = ('ce', 'dlr', 'dlr-targeted')
    # fp16: fp32 logits and losses, safe gradients, fp32 decisions to leave;
    # under bf16 it runs in fp32 (attack_correct)
    amp_safe = ('fp16',)

    def __init__(
        self,
        eps: float = 8.0,
        steps: int = 100,
        n_restarts: int = 1,
        loss: str = 'ce',
        n_target_classes: int = 9,
        rho: float = 0.75,
        norm: str = 'Linf',
        seed: int = 0,
        target_batch: Union[int, str, None] = 'auto',
    ):
        super().__init__(eps, norm, seed)
        name = type(self).__name__
        check_int(name, 'steps', steps, 1)
        check_int(name, 'n_restarts', n_restarts, 1)
        check_int(name, 'n_target_classes', n_target_classes, 1)
        check_target_batch(name, target_batch)
        if loss not in self.LOSSES:
            raise ValueError(f'attack {name}: loss={loss!r} is not one of {self.LOSSES}')
        if not isinstance(rho, (int, float)) or not 0 < rho <= 1:
            raise ValueError(f'attack {name}: rho={rho!r} must be in (0, 1]')
        self.steps, self.n_restarts, self.target_batch = steps, n_restarts, target_batch
        self.loss, self.n_target_classes, self.rho = loss, n_target_classes, rho
        # the reference's checkpoints
        self.n_iter_2 = max(int(0.22 * steps), 1)
        self.n_iter_min = max(int(0.06 * steps), 1)
        self.size_decr = max(int(0.03 * steps), 1)

    @property
    def targeted(self) -> bool:
        return self.loss == 'dlr-targeted'

    @property
    def title(self) -> str:
        return 'apgd-t' if self.targeted else f'apgd-{self.loss}'

    def __repr__(self):
        return (
            f'{type(self).__name__}(eps={self.eps}, steps={self.steps}, '
            f'n_restarts={self.n_restarts}, loss={self.loss!r}'
            + (f', n_target_classes={self.n_target_classes}' if self.targeted else '')
            + f', rho={self.rho})'
        )

    @fp32_under_autocast(
        "its step-size schedule compares loss values step to step, "
        "which bf16's 8-bit logits reorder (APGD-CE on the demo "
        'ResNet with logits x10: up to 1.6 points more robust)',
        precisions=('bf16',),
    )
    def attack_correct(self, model, x, y, k, clean_logits, task):
        """Every (target, restart) of every sample as rows, run in slices of
        ``target_batch`` rows; ``(broken, adv)`` per sample."""
        n_classes = clean_logits.size(1)
        if self.targeted:
            n_t = min(self.n_target_classes, n_classes - 1)
            if n_classes < 4:
                raise ValueError(
                    f'{type(self).__name__}: the targeted DLR loss '
                    f'needs >= 4 classes, the model has {n_classes}'
                )
            targets = target_classes(clean_logits, n_t).t()  # (T, M)
        else:
            n_t = 1
        m = len(x)
        # rows: target outer, restart, then sample (the reference's order)
        t_idx = torch.arange(n_t, device=x.device).repeat_interleave(self.n_restarts * m)
        r_idx = torch.arange(self.n_restarts, device=x.device).repeat_interleave(m).repeat(n_t)
        s_idx = torch.arange(m, device=x.device).repeat(n_t * self.n_restarts)
        rows = RowProgress(
            task, m, len(s_idx), self.steps, self.n_restarts * m if self.targeted else None
        )

        def attack_rows(idx):
            s, t, r = s_idx[idx], t_idx[idx], r_idx[idx]
            target = targets[t, s] if self.targeted else None
            # one stream per (target, restart): a sample's start is its own
            starts = self._starts(k[s], t * 1000 + r, x.shape[1:])
            return self._run(model, x[s], y[s], target, like(starts, x), s, rows)

        return run_rows(
            len(s_idx), s_idx, rows_per_pass(self.target_batch, x), attack_rows, m, x, rows
        )

    def _starts(self, keys, run, shape):
        """Uniform noise in [0, 1) per row: its sample's key, stream ``run``."""
        base = APGD_STREAM + 1_000_000 * self.LOSSES.index(self.loss)
        out = torch.empty((len(keys),) + tuple(shape), device=keys.device)
        for r in torch.unique(run).tolist():
            sel = run == r
            out[sel] = sample_uniform(keys[sel], shape, stream=base + r)
        return out

    def _loss(self, logits, y, target):
        if self.loss == 'ce':
            return F.cross_entropy(logits, y, reduction='none')
        if self.loss == 'dlr':
            return dlr_loss(logits, y)
        return dlr_targeted_loss(logits, y, target)

    def _run(self, model, x, y, target, noise, groups, progress=None):
        """One APGD run on rows; ``(broken, adv)`` per row.

        A row leaves at its first misclassified iterate, and with it every
        row of the same group (sample), whose result is then decided.
        ``progress`` (:class:`RowProgress`) is told of every step.
        """
        eps = self.eps / 255.0
        dims = (1, 2, 3)
        t = 2 * noise - 1
        x_adv = x + eps * t / (t.abs().amax(dim=dims, keepdim=True) + 1e-12)
        x_adv = x_adv.clamp(0.0, 1.0)
        rows = RowBatch(groups, x, progress, x=x, y=y, target=target)

        def grad_at(x_adv, y, target):
            with torch.enable_grad():
                x_adv = x_adv.clone().requires_grad_(True)
                logits = model(x_adv).float()
                loss = self._loss(logits, y, target)
                (grad,) = torch.autograd.grad(loss.sum(), x_adv)
            return logits.detach(), loss.detach(), grad.detach()

        def leave(logits, x_adv):
            # in fp32 under autocast: rounding must not end a sample's attack
            wrong = (logits.argmax(1) != rows.y) & rows.active
            rows.leave(confirm_misclassified(model, x_adv, rows.y, wrong), x_adv)

        logits, loss, grad = grad_at(x_adv, y, target)
        leave(logits, x_adv)
        rows.add(
            lo=x - eps,
            hi=x + eps,
            x_adv=x_adv,
            x_adv_old=x_adv.clone(),
            grad=grad,
            step=torch.full((len(x), 1, 1, 1), 2.0 * eps, device=x.device),
            x_best=x_adv.clone(),
            grad_best=grad.clone(),
            loss_best=loss.clone(),
            loss_best_last=loss.clone(),
            reduced_last=torch.ones_like(loss),
            # the loss of every step, per row
            loss_steps=torch.zeros(len(x), self.steps, device=x.device),
        )
        k, counter3 = self.n_iter_2, 0

        for i in range(self.steps):
            if not rows.compact(i):
                break
            grad2 = rows.x_adv - rows.x_adv_old
            rows.x_adv_old = rows.x_adv
            a = 0.75 if i > 0 else 1.0
            x_adv_1 = torch.min(
                torch.max(rows.x_adv + rows.step * rows.grad.sign(), rows.lo), rows.hi
            ).clamp(0.0, 1.0)
            rows.x_adv = torch.min(
                torch.max(rows.x_adv + (x_adv_1 - rows.x_adv) * a + grad2 * (1 - a), rows.lo),
                rows.hi,
            ).clamp(0.0, 1.0)
            logits, loss, rows.grad = grad_at(rows.x_adv, rows.y, rows.target)
            leave(logits, rows.x_adv)

            rows.loss_steps[:, i] = loss
            better = loss > rows.loss_best
            rows.x_best = torch.where(better[:, None, None, None], rows.x_adv, rows.x_best)
            rows.grad_best = torch.where(better[:, None, None, None], rows.grad, rows.grad_best)
            rows.loss_best = torch.where(better, loss, rows.loss_best)
            counter3 += 1
            if counter3 == k:
                # check_oscillation of the reference (index -1 wraps to the
                # buffer's last, still zero, column at the first checkpoint)
                inc = torch.zeros_like(rows.loss_best)
                for c in range(k):
                    inc += (rows.loss_steps[:, i - c] > rows.loss_steps[:, i - c - 1]).float()
                osc = (inc <= k * self.rho).float()
                no_impr = (1.0 - rows.reduced_last) * (
                    rows.loss_best_last >= rows.loss_best
                ).float()
                osc = torch.max(osc, no_impr)
                rows.reduced_last = osc.clone()
                rows.loss_best_last = rows.loss_best.clone()
                red = osc > 0
                rows.step = torch.where(red[:, None, None, None], rows.step / 2.0, rows.step)
                rows.x_adv = torch.where(red[:, None, None, None], rows.x_best, rows.x_adv)
                rows.grad = torch.where(red[:, None, None, None], rows.grad_best, rows.grad)
                k = max(k - self.size_decr, self.n_iter_min)
                counter3 = 0
            if progress is not None:
                progress.step_done(i + 1, len(rows.alive))
        return rows.broken, rows.adv
