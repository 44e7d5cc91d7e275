"""What AutoAttack's members (APGD, FAB, Square) share.

Their argument checks, the per-sample keys of their random numbers, the
memory layout of what they return, the slicing of their batched rows, and
the call ``adv = attack(model, images, labels, keys=None)`` around each
member's ``perturb``, which :class:`AutoAttack` calls directly with the
clean logits it already has.
"""
from typing import Callable, Optional, Tuple

import torch

from nofrost_mm.utils.sample_random import random_keys
from .pixel_size import check_pixel_size


def check_common(name: str, eps, norm: str, seed) -> None:
    """Checks shared by the AutoAttack members (eps, norm, seed)."""
    if norm != 'Linf':
        raise ValueError(f'attack {name}: norm={norm!r} is not supported; the '
                         "plug-in's AutoAttack members implement 'Linf' only")
    check_pixel_size(name, 'eps', eps, norm)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f'attack {name}: seed={seed!r} must be an int >= 0')


def check_int(name: str, key: str, value, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f'attack {name}: {key}={value!r} must be an int >= {low}')


def default_keys(keys: Optional[torch.Tensor], num: int, seed: int,
                 device) -> torch.Tensor:
    """The per-sample keys: the given ones, else drawn from ``seed`` alone."""
    if keys is None:
        gen = torch.Generator().manual_seed(seed)
        return random_keys(num, generator=gen).to(device)
    keys = torch.as_tensor(keys, dtype=torch.int64, device=device)
    if keys.shape != (num, ):
        raise ValueError(f'keys must have shape ({num},), got {tuple(keys.shape)}')
    return keys


def check_images(name: str, images: torch.Tensor, labels: torch.Tensor) -> None:
    if not torch.is_floating_point(images) or images.dim() != 4:
        raise ValueError(f'{name}: images must be a float tensor (N, C, H, W), '
                         f'got {images.dtype} of shape {tuple(images.shape)}')
    if labels.shape != images.shape[:1]:
        raise ValueError(f'{name}: labels must be (N,) class indices, got shape '
                         f'{tuple(labels.shape)} for {images.shape[0]} images')


def like(t: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``t`` in the memory format of ``ref`` (channels-last stays so)."""
    fmt = torch.channels_last if ref.dim() == 4 and not ref.is_contiguous() \
        and ref.is_contiguous(memory_format=torch.channels_last) \
        else torch.contiguous_format
    return t.contiguous(memory_format=fmt)


def model_format(model) -> Optional[torch.memory_format]:
    """channels_last when the model's first 4-d parameter (a conv weight) is
    stored so, contiguous_format for other 4-d weights, None without any."""
    for p in model.parameters():
        if p.dim() == 4:
            cl = not p.is_contiguous() and p.is_contiguous(
                memory_format=torch.channels_last)
            return torch.channels_last if cl else torch.contiguous_format
    return None


def run_rows(rows: int, groups: torch.Tensor, chunk: Optional[int],
             fn: Callable[[torch.Tensor], Tuple[torch.Tensor, torch.Tensor]],
             num_groups: int, like_rows: torch.Tensor):
    """Run ``fn`` on slices of ``rows`` rows; a group leaves after a break.

    ``fn(idx)`` attacks the rows ``idx`` and returns ``(broken, adv)`` per
    row. Rows are in the reference's order (target / restart outer, sample
    inner); a sample broken in one slice has its later rows skipped, as the
    reference skips broken samples. Returns per group whether it was broken
    and the adversarial image of its first breaking row.
    """
    broken = torch.zeros(num_groups, dtype=torch.bool, device=groups.device)
    adv = like_rows.clone()
    step = rows if not chunk else chunk
    for start in range(0, rows, step):
        idx = torch.arange(start, min(start + step, rows), device=groups.device)
        idx = idx[~broken[groups[idx]]]
        if not len(idx):
            continue
        row_broken, row_adv = fn(idx)
        g = groups[idx][row_broken]
        sel = row_adv[row_broken]
        # the first breaking row of each group (a stable sort keeps the
        # reference's order among a group's rows)
        order = torch.argsort(g, stable=True)
        g, sel = g[order], sel[order]
        first = torch.ones_like(g, dtype=torch.bool)
        first[1:] = g[1:] != g[:-1]
        adv[g[first]] = sel[first]
        broken[g] = True
    return broken, adv


class AutoAttackMember:
    """Base of AutoAttack's members: the call around ``perturb``.

    A member sets ``seed`` (the keys of its random numbers when a call
    gives none) and implements ``perturb(model, images, labels, keys,
    clean_logits) -> (adv, broken)``, which attacks the clean-correct
    samples and returns, for every sample, the adversarial image found (the
    clean one where none was) and whether it was broken.
    """

    seed: int

    def __call__(self, model, images: torch.Tensor, labels: torch.Tensor,
                 keys: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Attack ``images`` (N, C, H, W) in [0, 1]; returns detached images."""
        check_images(type(self).__name__, images, labels)
        keys = default_keys(keys, len(images), self.seed, images.device)
        with torch.no_grad():
            logits = model(images).float()
        adv, _ = self.perturb(model, images.detach(), labels, keys, logits)
        return adv

    def perturb(self, model, images: torch.Tensor, labels: torch.Tensor,
                keys: torch.Tensor, clean_logits: torch.Tensor):
        raise NotImplementedError
