"""Square Attack (Andriushchenko et al. 2020), L-inf, the reference's settings, vectorised.

The score-based attack of ``SquareAttack`` (fra31/auto-attack, ``square.py``)
as standard AutoAttack runs it: margin loss, 5000 queries, ``p_init=0.8``
and the fixed schedule of ``p`` for 10000 queries (``resc_schedule=False``),
vertical-stripe initialisation, one restart. Each iteration proposes for
every unbroken sample its own square (position and per-channel sign drawn
from the sample's key, :mod:`nofrost_mm.utils.sample_random`), built for the
whole batch with index comparisons, no per-image Python; a proposal is kept
when it lowers the margin or misclassifies.
"""
import math
from typing import Optional

import torch

from nofrost_mm.registry import ATTACKS
from nofrost_mm.utils.sample_random import sample_bits
from .apgd import check_common, check_images, check_int, default_keys, like

SQUARE_STREAM = 0x53515541
# queries whose random numbers are drawn at once (bounds their memory)
_DRAW_CHUNK = 500


def p_selection(p_init: float, it: int, n_queries: int, rescale: bool) -> float:
    """The reference's schedule of the square's area fraction ``p``."""
    if rescale:
        it = int(it / n_queries * 10000)
    for bound, div in ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16),
                       (2000, 32), (4000, 64), (6000, 128), (8000, 256)):
        if it <= bound:
            return p_init / div
    return p_init / 512


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``z_y - max_{j != y} z_j`` per row (the reference's margin loss)."""
    zy = logits.gather(1, y[:, None])[:, 0]
    other = logits.scatter(1, y[:, None], float('-inf')).amax(1)
    return zy - other


def square_deltas(vh: torch.Tensor, vw: torch.Tensor, s: int,
                  signs: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(N, C, H, W): ``signs[n, c]`` on the ``s`` x ``s`` square at
    ``(vh[n], vw[n])`` of each sample, zero elsewhere."""
    rows = torch.arange(h, device=vh.device)
    cols = torch.arange(w, device=vh.device)
    in_h = (rows[None] >= vh[:, None]) & (rows[None] < vh[:, None] + s)
    in_w = (cols[None] >= vw[:, None]) & (cols[None] < vw[:, None] + s)
    mask = (in_h[:, :, None] & in_w[:, None, :]).to(signs.dtype)
    return signs[:, :, None, None] * mask[:, None]


@ATTACKS.register_module()
class SquareAttack:
    """Square Attack for L-inf, the reference's loop vectorised per sample.

    Called as ``adv = attack(model, images, labels, keys=None)``; only the
    model's outputs are used (no gradients).

    Args:
        eps (float): L-inf radius in pixel units of 255. Defaults to 8.
        n_queries (int): Queries (iterations) per sample. Defaults to 5000.
        p_init (float): Initial fraction of the image the square covers.
            Defaults to 0.8.
        rescale_schedule (bool): Stretch ``p``'s schedule (set for 10000
            queries) to ``n_queries``; standard AutoAttack does not.
            Defaults to False.
        norm (str): Only 'Linf'. Defaults to 'Linf'.
        seed (int): Keys of the random squares when the call gives none.
            Defaults to 0.

    Example:
        >>> adv = SquareAttack(eps=8)(normalized_classifier, images, labels)
    """

    def __init__(self, eps: float = 8., n_queries: int = 5000, p_init: float = .8,
                 rescale_schedule: bool = False, norm: str = 'Linf', seed: int = 0):
        name = type(self).__name__
        check_common(name, eps, norm, seed)
        check_int(name, 'n_queries', n_queries, 1)
        if not isinstance(p_init, (int, float)) or not 0 < p_init <= 1:
            raise ValueError(f'attack {name}: p_init={p_init!r} must be in (0, 1]')
        if not isinstance(rescale_schedule, bool):
            raise ValueError(f'attack {name}: rescale_schedule must be True or False')
        self.eps, self.n_queries, self.p_init = eps, n_queries, p_init
        self.rescale_schedule, self.norm, self.seed = rescale_schedule, norm, seed

    def __repr__(self):
        return (f'{type(self).__name__}(eps={self.eps}, n_queries={self.n_queries}, '
                f'p_init={self.p_init}, rescale_schedule={self.rescale_schedule})')

    def __call__(self, model, images: torch.Tensor, labels: torch.Tensor,
                 keys: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Attack ``images`` (N, C, H, W) in [0, 1]; returns detached images."""
        check_images(type(self).__name__, images, labels)
        keys = default_keys(keys, len(images), self.seed, images.device)
        with torch.no_grad():
            logits = model(images).float()
        adv, _ = self.perturb(model, images.detach(), labels, keys, logits)
        return adv

    @torch.no_grad()
    def perturb(self, model, images, labels, keys, clean_logits):
        """Attack the clean-correct samples; ``(adv, broken)`` for all."""
        adv = images.clone()
        broken = torch.zeros(len(images), dtype=torch.bool, device=images.device)
        todo = (clean_logits.argmax(1) == labels).nonzero()[:, 0]
        if not len(todo):
            return adv, broken
        x, y, k = images[todo], labels[todo], keys[todo]
        best, got = self.attack_rows(model, x, y, k)
        broken[todo] = got
        adv[todo[got]] = best[got]
        return adv, broken

    def attack_rows(self, model, x, y, keys):
        """The reference's ``attack_single_run`` (L-inf); returns the best
        images and whether each sample ends misclassified."""
        eps = self.eps / 255.
        n, c, h, w = x.shape
        n_features = c * h * w
        stripes = sample_bits(keys, (c, 1, w), stream=SQUARE_STREAM)
        signs = like(((stripes >> 31) & 1).to(x.dtype) * 2 - 1, x)
        x_best = (x + eps * signs).clamp(0., 1.)
        margin_min = margin(model(x_best).float(), y)
        loss_min = margin_min.clone()
        lo, hi = x - eps, x + eps
        draws = None
        for i_iter in range(self.n_queries):
            if i_iter % _DRAW_CHUNK == 0:
                # (N, queries, 2 + C): square row, column, channel signs
                span = min(_DRAW_CHUNK, self.n_queries - i_iter)
                draws = sample_bits(keys, (span, 2 + c), stream=SQUARE_STREAM
                                    + 1 + i_iter // _DRAW_CHUNK)
            idx = (margin_min > 0.0).nonzero()[:, 0]
            if not len(idx):
                break
            p = p_selection(self.p_init, i_iter, self.n_queries,
                            self.rescale_schedule)
            s = max(int(round(math.sqrt(p * n_features / c))), 1)
            s = min(s, min(h, w))
            bits = draws[idx, i_iter % _DRAW_CHUNK]
            # the reference draws positions in [0, h - s) (not h - s + 1)
            vh = (bits[:, 0] * (h - s)) >> 32
            vw = (bits[:, 1] * (w - s)) >> 32
            sq_signs = ((bits[:, 2:] >> 31) & 1).to(x.dtype) * 2 - 1
            deltas = like(square_deltas(vh, vw, s, 2. * eps * sq_signs, h, w), x)
            x_best_curr = x_best[idx]
            x_new = torch.min(torch.max(x_best_curr + deltas, lo[idx]), hi[idx]
                              ).clamp(0., 1.)
            marg = margin(model(x_new).float(), y[idx])
            improved = marg < loss_min[idx]
            loss_min[idx] = torch.where(improved, marg, loss_min[idx])
            improved = improved | (marg <= 0.)
            margin_min[idx] = torch.where(improved, marg, margin_min[idx])
            x_best[idx] = torch.where(improved[:, None, None, None], x_new, x_best_curr)
        return x_best, margin_min <= 0.
