"""Targeted FAB (Croce & Hein 2020), L-inf, the reference's settings, targets batched.

The minimum-norm attack of ``FABAttack`` (fra31/auto-attack, ``fab_base.py``,
``fab_pt.py``, ``fab_projections.py``) as standard AutoAttack runs it: for each
of the 9 most likely other classes, 100 iterations from the clean image (one
restart, so no random start) of the projection onto the linearised decision
boundary towards the target, with ``alpha_max=0.1``, ``eta=1.05``,
``beta=0.9``; a sample is broken when an iterate misclassifies it within
``eps``. The reference runs the targets one after another on the survivors;
here each (sample, target) is one row of one batch, and a sample leaves the
batch, all its rows at once, when one row finds an adversarial image within
``eps`` (the iterates do not depend on the best norm found so far, so the
samples that break are those the reference breaks).
"""

import math
from typing import Optional, Union

import torch

from nofrost_mm.registry import ATTACKS
from ..mixed_precision import fp32_under_autocast
from .apgd import target_classes
from .autoattack_member import (
    AutoAttackMember,
    RowBatch,
    RowProgress,
    check_int,
    check_target_batch,
    rows_per_pass,
    run_rows,
)


def projection_linf(t: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Smallest L-inf step from ``t`` onto ``{z: w.z = b}`` within [0, 1].

    The reference's ``projection_linf`` (``fab_projections.py``): rows of
    ``t``, ``w`` (R, D) and ``b`` (R,); a bisection over the sorted
    coordinates.
    """
    w = w.clone()
    b = b.clone()
    sign = 2 * ((w * t).sum(1) - b >= 0) - 1
    w.mul_(sign.unsqueeze(1))
    b.mul_(sign)
    a = (w < 0).float()
    d = (a - t) * (w != 0).float()
    p = a - t * (2 * a - 1)
    indp = torch.argsort(p, dim=1)
    b = b - (w * t).sum(1)
    b0 = (w * d).sum(1)
    indp2 = indp.flip((1,))
    ws = w.gather(1, indp2)
    bs2 = -ws * d.gather(1, indp2)
    s = torch.cumsum(ws.abs(), dim=1)
    sb = torch.cumsum(bs2, dim=1) + b0.unsqueeze(1)
    b2 = sb[:, -1] - s[:, -1] * p.gather(1, indp[:, 0:1]).squeeze(1)
    c_l = b - b2 > 0
    c2 = (b - b0 > 0) & (~c_l)
    # the bisection and both updates run on every row, each kept where its
    # case holds (torch.where): the same values per row as on the case's
    # rows alone, without a host read of which rows those are
    lb = torch.zeros(len(w), device=t.device)
    ub = torch.full_like(lb, w.shape[1] - 1)
    nitermax = math.ceil(math.log2(w.shape[1]))
    for _ in range(nitermax):
        counter4 = torch.floor((lb + ub) / 2)
        counter2 = counter4.long().unsqueeze(1)
        indcurr = indp.gather(1, indp.size(1) - 1 - counter2)
        b2 = (sb.gather(1, counter2) - s.gather(1, counter2) * p.gather(1, indcurr)).squeeze(1)
        c = b - b2 > 0
        lb = torch.where(c, counter4, lb)
        ub = torch.where(c, ub, counter4)
    lb = lb.long().unsqueeze(1)
    lmbd_l = torch.clamp_min((b - sb[:, -1]) / (-s[:, -1]), min=0).unsqueeze(-1)
    d = torch.where(c_l[:, None], (2 * a - 1) * lmbd_l, d)
    lmbd_opt = torch.clamp_min(
        (b - sb.gather(1, lb).squeeze(1)) / (-s.gather(1, lb).squeeze(1)), min=0
    ).unsqueeze(-1)
    d = torch.where(c2[:, None], torch.min(lmbd_opt, d) * a + torch.max(-lmbd_opt, d) * (1 - a), d)
    return d * (w != 0).float()


def boundary_steps(
    x1: torch.Tensor,
    im2: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor,
    rows: Optional[int] = None,
):
    """:func:`projection_linf` of the iterates ``x1`` and of the clean images
    ``im2`` (R, D) onto the same planes, on at most ``rows`` rows at a time.

    Rows are projected independently, so the slices give the steps of the
    reference's one call on both halves (which the call makes when they fit
    in ``rows``, or ``rows`` is None).
    """
    if rows is None or 2 * len(x1) <= rows:
        d = projection_linf(torch.cat((x1, im2)), torch.cat((w, w)), torch.cat((b, b)))
        return d[: len(x1)], d[len(x1) :]
    d1, d2 = torch.empty_like(x1), torch.empty_like(im2)
    for out, t in ((d1, x1), (d2, im2)):
        for i in range(0, len(t), rows):
            out[i : i + rows] = projection_linf(t[i : i + rows], w[i : i + rows], b[i : i + rows])
    return d1, d2


@ATTACKS.register_module()
class FABAttack(AutoAttackMember):
    """Targeted FAB (FAB-T) for L-inf with the reference's standard settings.

    Called as ``adv = attack(model, images, labels, keys=None)``. Standard
    AutoAttack's FAB-T has one restart, hence no random start, so it uses
    no random numbers (``keys`` and ``seed`` are accepted for a uniform
    call). The model is used as given (see :func:`attack_context`).

    Under autocast it runs in fp32 (one log line): it projects onto the
    boundary of a linearisation and stops next to it, which bf16 and fp16
    rounding mislead (FAB-T with 10 iterations left 1.5 points more
    samples robust in bf16 than in fp32 on a tiny CNN with logits x30).

    Args:
        eps (float): L-inf radius in pixel units of 255 (an adversarial
            image counts when within it). Defaults to 8.
        steps (int): Iterations per target. Defaults to 100.
        n_target_classes (int): Targets: the most likely other classes of
            the clean image. Defaults to 9.
        alpha_max (float): Largest step towards the clean image's
            projection. Defaults to 0.1.
        eta (float): Overshoot of the projection step. Defaults to 1.05.
        beta (float): Backward step after an adversarial iterate.
            Defaults to 0.9.
        norm (str): Only 'Linf'. Defaults to 'Linf'.
        seed (int): Unused (no random start); kept for the common call.
            Defaults to 0.
        target_batch (int | str, optional): At most this many rows
            (images) per pass: targets then run in slices, in the
            reference's order, later slices only on the survivors; the
            projection onto the boundary runs on slices of as many rows
            (the same iterates). 'auto': rows of at most 2**25 input
            elements (222 at 224 px). None runs all at once.
            Defaults to 'auto'.

    Example:
        >>> adv = FABAttack(eps=8)(normalized_classifier, images, labels)
    """

    # runs in fp32 under autocast (_run)
    amp_safe = False

    def __init__(
        self,
        eps: float = 8.0,
        steps: int = 100,
        n_target_classes: int = 9,
        alpha_max: float = 0.1,
        eta: float = 1.05,
        beta: float = 0.9,
        norm: str = 'Linf',
        seed: int = 0,
        target_batch: Union[int, str, None] = 'auto',
    ):
        super().__init__(eps, norm, seed)
        name = type(self).__name__
        check_int(name, 'steps', steps, 1)
        check_int(name, 'n_target_classes', n_target_classes, 1)
        check_target_batch(name, target_batch)
        for key, value, low, high in (
            ('alpha_max', alpha_max, 0, 1),
            ('eta', eta, 1, 10),
            ('beta', beta, 0, 1),
        ):
            if not isinstance(value, (int, float)) or not low <= value <= high:
                raise ValueError(f'attack {name}: {key}={value!r} must be in [{low}, {high}]')
        self.steps, self.n_target_classes, self.target_batch = steps, n_target_classes, target_batch
        self.alpha_max, self.eta, self.beta = alpha_max, eta, beta

    def __repr__(self):
        return (
            f'{type(self).__name__}(eps={self.eps}, steps={self.steps}, '
            f'n_target_classes={self.n_target_classes}, alpha_max='
            f'{self.alpha_max}, eta={self.eta}, beta={self.beta})'
        )

    title = 'fab-t'

    def attack_correct(self, model, x, y, keys, clean_logits, task):
        """Every (target, sample) as rows, run in slices of ``target_batch``
        rows; ``(broken, adv)`` per sample."""
        n_t = min(self.n_target_classes, clean_logits.size(1) - 1)
        targets = target_classes(clean_logits, n_t).t()  # (T, M)
        m = len(x)
        t_idx = torch.arange(n_t, device=x.device).repeat_interleave(m)
        s_idx = torch.arange(m, device=x.device).repeat(n_t)
        rows = RowProgress(task, m, len(s_idx), self.steps, m)

        def attack_rows(idx):
            s = s_idx[idx]
            return self._run(model, x[s], y[s], targets[t_idx[idx], s], s, rows)

        return run_rows(
            len(s_idx), s_idx, rows_per_pass(self.target_batch, x), attack_rows, m, x, rows
        )

    @fp32_under_autocast(
        'its steps onto the linearised boundary end next to it, '
        'where reduced precision misleads them'
    )
    def _run(self, model, im2, y, target, groups, progress=None):
        """FAB-T on rows from the clean image; ``(broken, adv)`` per row;
        ``progress`` (:class:`RowProgress`) is told of every step."""
        eps = self.eps / 255.0
        rows = RowBatch(groups, im2, progress, x1=im2.clone(), im2=im2, y=y, target=target)
        # the projection's tensors, about ten of (rows, C x H x W), stay
        # within those of one pass's forward rows
        chunk = rows_per_pass(self.target_batch, im2)
        for step in range(self.steps):
            if not rows.compact(step):
                break
            x1, im2, y = rows.x1, rows.im2, rows.y
            with torch.enable_grad():
                xg = x1.clone().requires_grad_(True)
                logits = model(xg).float()
                u = torch.arange(len(xg), device=xg.device)
                diffy = -(logits[u, y] - logits[u, rows.target])
                (dg,) = torch.autograd.grad(diffy.sum(), xg)
            df = diffy.detach()
            bs = len(x1)
            w = dg.reshape(bs, -1)
            b = -df + (w * x1.reshape(bs, -1)).sum(dim=-1)
            d1, d2 = boundary_steps(x1.reshape(bs, -1), im2.reshape(bs, -1), w, b, chunk)
            a1, a2 = (d.abs().amax(1).view(-1, 1, 1, 1).clamp_min(1e-8) for d in (d1, d2))
            d1, d2 = d1.reshape(x1.shape), d2.reshape(x1.shape)
            alpha = (a1 / (a1 + a2)).clamp(0.0, self.alpha_max)
            x1 = ((x1 + self.eta * d1) * (1 - alpha) + (im2 + d2 * self.eta) * alpha).clamp(
                0.0, 1.0
            )
            with torch.no_grad():
                is_adv = model(x1).argmax(1) != y
            # on the device: the rows that break within eps leave with
            # their group (sample); the adversarial rows step back
            dist = (x1 - im2).abs().flatten(1).amax(1)
            rows.leave(is_adv & (dist <= eps) & rows.active, x1)
            back = is_adv[:, None, None, None]
            rows.x1 = torch.where(back, im2 + (x1 - im2) * self.beta, x1)
            if progress is not None:
                progress.step_done(step + 1, len(rows.alive))
        return rows.broken, rows.adv
