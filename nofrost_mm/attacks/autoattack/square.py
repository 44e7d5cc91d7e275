"""Square Attack (Andriushchenko et al. 2020), L-inf, the reference's settings, vectorised.

The score-based attack of ``SquareAttack`` (fra31/auto-attack, ``square.py``)
as standard AutoAttack runs it: margin loss, 5000 queries, ``p_init=0.8``
and the fixed schedule of ``p`` for 10000 queries (``resc_schedule=False``),
vertical-stripe initialisation, one restart. Each iteration proposes for
every unbroken sample its own square (position and per-channel sign drawn
from the sample's key, :mod:`nofrost_mm.utils.sample_random`), built for the
whole batch with index comparisons, no per-image Python; a proposal is kept
when it lowers the margin or misclassifies.

Queries are evaluated ahead. Until a proposal is kept, a sample's best image
and margin do not change, so its next proposals (their squares are drawn per
query index) are known in advance: each sample sends its next few proposals,
all on its current best image, in one batch, keeps the first that the
sequential loop would keep, and asks the later ones again from the new best
image. The kept proposals, hence the result, are those of the one-query loop;
what changes is the number of model calls (fewer, larger batches; most
proposals are rejected once the squares are small). How many a sample sends
follows its own acceptance rate (about one expected acceptance per batch).
"""

import math
from typing import Union

import torch

from nofrost_mm.registry import ATTACKS
from nofrost_mm.utils.sample_random import sample_bits
from ..mixed_precision import fp32_recheck, fp32_under_autocast
from ..survivors import rows_where
from .autoattack_member import AutoAttackMember, check_int, like

SQUARE_STREAM = 0x53515541
# queries whose random numbers are drawn at once (bounds their memory)
_DRAW_CHUNK = 500


def p_selection(p_init: float, it: int, n_queries: int, rescale: bool) -> float:
    """The reference's schedule of the square's area fraction ``p``."""
    if rescale:
        it = int(it / n_queries * 10000)
    for bound, div in (
        (10, 1),
        (50, 2),
        (200, 4),
        (500, 8),
        (1000, 16),
        (2000, 32),
        (4000, 64),
        (6000, 128),
        (8000, 256),
    ):
        if it <= bound:
            return p_init / div
    return p_init / 512


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``z_y - max_{j != y} z_j`` per row (the reference's margin loss)."""
    zy = logits.gather(1, y[:, None])[:, 0]
    other = logits.scatter(1, y[:, None], float('-inf')).amax(1)
    return zy - other


def square_deltas(
    vh: torch.Tensor,
    vw: torch.Tensor,
    s: Union[int, torch.Tensor],
    signs: torch.Tensor,
    h: int,
    w: int,
) -> torch.Tensor:
    """(N, C, H, W): ``signs[n, c]`` on the ``s`` x ``s`` square at
    ``(vh[n], vw[n])`` of each sample, zero elsewhere (``s`` one int or one
    per sample)."""
    rows = torch.arange(h, device=vh.device)
    cols = torch.arange(w, device=vh.device)
    if isinstance(s, torch.Tensor):
        s = s[:, None]
    in_h = (rows[None] >= vh[:, None]) & (rows[None] < vh[:, None] + s)
    in_w = (cols[None] >= vw[:, None]) & (cols[None] < vw[:, None] + s)
    mask = (in_h[:, :, None] & in_w[:, None, :]).to(signs.dtype)
    return signs[:, :, None, None] * mask[:, None]


@ATTACKS.register_module()
class SquareAttack(AutoAttackMember):
    """Square Attack for L-inf, the reference's loop vectorised per sample.

    Called as ``adv = attack(model, images, labels, keys=None)``; only the
    model's outputs are used (no gradients). Under fp16 autocast its margins
    are fp32 from the fp16 network, a margin at or below 0 computed again in
    fp32 before a sample stops; under bf16 it runs in fp32 (one log line):
    bf16 rounding of the margins left 1-2% more samples robust.

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
        max_lookahead (int): At most this many queries of one sample
            evaluated in one batch, on the same best image; the first one
            the sequential loop would keep is kept and the later ones are
            asked again. Changes the number of model calls, not the result
            (1 is the sequential loop). Each query sent after the one kept
            is work thrown away: on the demo BN-AT ResNet's 44 robust images
            (5000 queries, 220k images one query at a time) 4 sent 232k
            images in 1353 calls, 16 sent 284k in 484 calls, and the larger
            batches were no cheaper per image on a 2-core CPU.
            Defaults to 4.

    Example:
        >>> adv = SquareAttack(eps=8)(normalized_classifier, images, labels)
    """

    # fp16 margins (fp32 where one says "broken") keep the fp32 search;
    # under bf16 it runs in fp32 (attack_correct)
    amp_safe = ('fp16',)

    def __init__(
        self,
        eps: float = 8.0,
        n_queries: int = 5000,
        p_init: float = 0.8,
        rescale_schedule: bool = False,
        norm: str = 'Linf',
        seed: int = 0,
        max_lookahead: int = 4,
    ):
        super().__init__(eps, norm, seed)
        name = type(self).__name__
        check_int(name, 'n_queries', n_queries, 1)
        check_int(name, 'max_lookahead', max_lookahead, 1)
        if not isinstance(p_init, (int, float)) or not 0 < p_init <= 1:
            raise ValueError(f'attack {name}: p_init={p_init!r} must be in (0, 1]')
        if not isinstance(rescale_schedule, bool):
            raise ValueError(f'attack {name}: rescale_schedule must be True or False')
        self.n_queries, self.p_init = n_queries, p_init
        self.rescale_schedule, self.max_lookahead = rescale_schedule, max_lookahead

    def __repr__(self):
        return (
            f'{type(self).__name__}(eps={self.eps}, n_queries={self.n_queries}, '
            f'p_init={self.p_init}, rescale_schedule={self.rescale_schedule})'
        )

    title = 'square'

    @torch.no_grad()
    @fp32_under_autocast(
        "bf16's 8-bit margins hide the small improvements its search keeps", precisions=('bf16',)
    )
    def attack_correct(self, model, x, y, keys, clean_logits, task):
        """The reference's ``attack_single_run`` (L-inf); returns whether
        each sample ends misclassified and the best images.

        Queries are evaluated ahead (see the module docstring): each sample
        proposes its next ``lookahead`` squares on its current best image in
        one batch, and keeps the first one that the sequential loop would
        keep; the proposals after it are dropped and asked again from the
        new best image. ``task`` (a :class:`ProgressTask`) gets the
        progress: the images sent, and the queries left (counted when a
        line is written).
        """
        eps = self.eps / 255.0
        n, c, h, w = x.shape
        n_features = c * h * w
        dev = x.device
        stripes = sample_bits(keys, (c, 1, w), stream=SQUARE_STREAM)
        signs = like(((stripes >> 31) & 1).to(x.dtype) * 2 - 1, x)
        x_best = (x + eps * signs).clamp(0.0, 1.0)
        margin_min = self._margin(model, x_best, y)
        loss_min = margin_min.clone()
        lo, hi = x - eps, x + eps
        # the side of the square of each query (a function of its index)
        sizes = torch.tensor(
            [
                min(
                    max(
                        int(
                            round(
                                math.sqrt(
                                    p_selection(
                                        self.p_init, i, self.n_queries, self.rescale_schedule
                                    )
                                    * n_features
                                    / c
                                )
                            )
                        ),
                        1,
                    ),
                    min(h, w),
                )
                for i in range(self.n_queries)
            ],
            device=dev,
        )
        draws = _QueryDraws(keys, c, h, w, sizes)
        nxt = torch.zeros(n, dtype=torch.long, device=dev)  # next query
        # per-sample acceptance counts: the look-ahead follows the rate
        accepted = torch.ones(n, device=dev)
        asked = torch.full((n,), 2.0, device=dev)
        sent = 0  # images sent to the model, look-ahead included
        big = torch.iinfo(torch.long).max
        while True:
            # the iteration's one host read: how many samples go on, how many
            # images they send and which query blocks those fall in; the
            # rest is masked on the device, not picked by boolean masks
            todo = (margin_min > 0.0) & (nxt < self.n_queries)
            ahead = (asked / accepted).floor().long().clamp(1, self.max_lookahead)
            ahead = torch.where(todo, torch.minimum(ahead, self.n_queries - nxt), 0)
            count, total, first_query, last_query = torch.stack(
                [
                    todo.sum(),
                    ahead.sum(),
                    torch.where(todo, nxt, big).min(),
                    torch.where(todo, nxt + ahead - 1, -1).max(),
                ]
            ).tolist()
            if not count:
                break
            draws.release(first_query)
            todo = rows_where(todo, count)
            ahead = ahead[todo]
            # rows: sample outer, its queries nxt, nxt + 1, ... inner
            row_s = todo.repeat_interleave(ahead, output_size=total)
            starts = torch.cumsum(ahead, 0) - ahead
            offset = torch.arange(total, device=dev) - starts.repeat_interleave(
                ahead, output_size=total
            )
            query = nxt[row_s] + offset
            vh, vw, sq_signs = draws.get(
                row_s, query, range(first_query // _DRAW_CHUNK, last_query // _DRAW_CHUNK + 1)
            )
            s = sizes[query]
            deltas = like(square_deltas(vh, vw, s, 2.0 * eps * sq_signs.to(x.dtype), h, w), x)
            x_new = torch.min(torch.max(x_best[row_s] + deltas, lo[row_s]), hi[row_s]).clamp(
                0.0, 1.0
            )
            marg = self._margin(model, x_new, y[row_s])
            # the sequential loop keeps a proposal that lowers the margin or
            # misclassifies; until one is kept its best image is unchanged
            keep = (marg < loss_min[row_s]) | (marg <= 0.0)
            first = torch.full((n,), big, dtype=torch.long, device=dev)
            first.scatter_reduce_(0, row_s, torch.where(keep, offset, big), 'amin')
            hit = first[todo] < big
            done = torch.where(hit, first[todo] + 1, ahead)
            nxt[todo] += done
            asked[todo] += done
            accepted[todo] += hit.float()
            # each sample's kept proposal (at most one row), where it has one
            won = torch.where(offset == first[row_s], torch.arange(total, device=dev), -1)
            pick = torch.full((n,), -1, dtype=torch.long, device=dev).scatter_reduce_(
                0, row_s, won, 'amax'
            )
            has, pick = pick >= 0, pick.clamp(min=0)
            loss_min = torch.where(has, torch.minimum(loss_min, marg[pick]), loss_min)
            margin_min = torch.where(has, marg[pick], margin_min)
            x_best = torch.where(has[:, None, None, None], x_new[pick], x_best)
            sent += total
            task.update(
                sent,
                lambda: sent + self._queries_left(nxt, margin_min),
                lambda: self._status(nxt, margin_min),
            )
        return margin_min <= 0.0, x_best

    def _queries_left(self, nxt, margin_min) -> int:
        return int(((self.n_queries - nxt) * (margin_min > 0.0)).sum())

    def _status(self, nxt, margin_min) -> str:
        n = len(nxt)
        robust = margin_min > 0.0
        broken = n - int(robust.sum())
        # the query the slowest robust sample is at
        query = int(nxt[robust].min()) if broken < n else int(nxt.max())
        return (
            f'query {query}/{self.n_queries} (slowest sample): {broken} of {n} '
            f'samples broken, {n - broken} still robust'
        )

    @staticmethod
    def _margin(model, images, y):
        """fp32 margins of ``images``; under autocast the rounded margins
        ``<= 0`` (a sample would stop there) are computed again in fp32."""
        marg = margin(model(images).float(), y)
        return fp32_recheck(
            model, images, marg <= 0.0, marg, lambda logits, rows: margin(logits, y[rows])
        )


class _QueryDraws:
    """The random numbers of every (sample, query) of one Square run.

    Square ``i`` of a sample comes from the bits of query ``i % 500`` of its
    stream ``SQUARE_STREAM + 1 + i // 500``: row, column (scaled to the
    square's side) and one sign per channel. Blocks of 500 queries are drawn
    for all samples when first asked and dropped once every sample has
    passed them.
    """

    def __init__(self, keys, c, h, w, sizes):
        self.keys, self.c, self.h, self.w, self.sizes = keys, c, h, w, sizes
        self.blocks = {}

    def _block(self, b):
        if b not in self.blocks:
            span = min(_DRAW_CHUNK, len(self.sizes) - b * _DRAW_CHUNK)
            bits = sample_bits(self.keys, (_DRAW_CHUNK, 2 + self.c), stream=SQUARE_STREAM + 1 + b)[
                :, :span
            ]
            s = self.sizes[b * _DRAW_CHUNK : b * _DRAW_CHUNK + span]
            # the reference draws positions in [0, h - s) (not h - s + 1)
            vh = (bits[..., 0] * (self.h - s)) >> 32
            vw = (bits[..., 1] * (self.w - s)) >> 32
            sq = ((bits[..., 2:] >> 31) & 1).to(torch.int8) * 2 - 1
            self.blocks[b] = (vh, vw, sq)
        return self.blocks[b]

    def get(self, rows, query, blocks):
        """Row, column and channel signs of square ``query[r]`` of sample
        ``rows[r]``; ``blocks`` (a range the caller read) holds every
        query's block (each block is picked by a mask: no host read)."""
        block = query // _DRAW_CHUNK
        vh = torch.zeros_like(query)
        vw = torch.zeros_like(query)
        sq = torch.zeros((len(query), self.c), dtype=torch.int8, device=query.device)
        for b in blocks:
            bvh, bvw, bsq = self._block(b)
            sel = block == b
            q = (query - b * _DRAW_CHUNK).clamp(0, bvh.size(1) - 1)
            vh = torch.where(sel, bvh[rows, q], vh)
            vw = torch.where(sel, bvw[rows, q], vw)
            sq = torch.where(sel[:, None], bsq[rows, q], sq)
        return vh, vw, sq

    def release(self, first_query):
        """Drop the blocks wholly before ``first_query``."""
        for b in [b for b in self.blocks if (b + 1) * _DRAW_CHUNK <= first_query]:
            del self.blocks[b]
