"""What AutoAttack's members (APGD, FAB, Square) share.

Their argument checks, the per-sample keys of their random numbers, the
memory layout of what they return, the slicing of their batched rows, the
step loop's batch of rows that a sample leaves at its first break, and the
call ``adv = attack(model, images, labels, keys=None)`` around each member's
``perturb`` (attack the clean-correct samples), which :class:`AutoAttack`
calls directly with the clean logits it already has.
"""

from typing import Callable, Optional, Tuple

import torch

from nofrost_mm.utils.progress import NO_PROGRESS, ProgressReporter
from nofrost_mm.utils.sample_random import random_keys
from ..mixed_precision import autocast_dtype, fp32_logits, precision_safe
from ..pixel_size import check_pixel_size
from ..survivors import rows_where, survivor_rows


def check_common(name: str, eps, norm: str, seed) -> None:
    """Checks shared by the AutoAttack members (eps, norm, seed)."""
    if norm != 'Linf':
        raise ValueError(
            f'attack {name}: norm={norm!r} is not supported; the '
            "plug-in's AutoAttack members implement 'Linf' only"
        )
    check_pixel_size(name, 'eps', eps, norm)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f'attack {name}: seed={seed!r} must be an int >= 0')


def check_int(name: str, key: str, value, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f'attack {name}: {key}={value!r} must be an int >= {low}')


# ``target_batch='auto'``: rows of one pass hold at most this many input
# elements (222 images at 224 px, 10922 at 32 px): with their activations and
# input gradients (NF-ResNet-50: about 0.1 GB an image at 224 px) and FAB's
# projection (about ten tensors of rows x C x H x W, some int64) well within
# an 80 GB GPU, and all 9 targets of a CIFAR or MNIST batch in one pass
AUTO_ROW_ELEMENTS = 2**25


def check_target_batch(name: str, target_batch) -> None:
    """``target_batch``: None, 'auto' or an int >= 1."""
    if target_batch is None or target_batch == 'auto':
        return
    if not isinstance(target_batch, int) or isinstance(target_batch, bool) or target_batch < 1:
        raise ValueError(
            f"attack {name}: target_batch={target_batch!r} must be "
            "'auto' (rows of at most 2**25 input elements), None "
            '(all rows in one pass) or an int >= 1'
        )


def rows_per_pass(target_batch, images: torch.Tensor) -> Optional[int]:
    """Rows (images) of one pass for ``target_batch`` on ``images``' size:
    an int, None (no bound), or 'auto' resolved from the image size."""
    if target_batch == 'auto':
        return max(1, AUTO_ROW_ELEMENTS // max(images[0].numel(), 1))
    return target_batch


def default_keys(keys: Optional[torch.Tensor], num: int, seed: int, device) -> torch.Tensor:
    """The per-sample keys: the given ones, else drawn from ``seed`` alone."""
    if keys is None:
        gen = torch.Generator().manual_seed(seed)
        return random_keys(num, generator=gen).to(device)
    keys = torch.as_tensor(keys, dtype=torch.int64, device=device)
    if keys.shape != (num,):
        raise ValueError(f'keys must have shape ({num},), got {tuple(keys.shape)}')
    return keys


def check_images(name: str, images: torch.Tensor, labels: torch.Tensor) -> None:
    if not torch.is_floating_point(images) or images.dim() != 4:
        raise ValueError(
            f'{name}: images must be a float tensor (N, C, H, W), '
            f'got {images.dtype} of shape {tuple(images.shape)}'
        )
    if labels.shape != images.shape[:1]:
        raise ValueError(
            f'{name}: labels must be (N,) class indices, got shape '
            f'{tuple(labels.shape)} for {images.shape[0]} images'
        )


def like(t: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``t`` in the memory format of ``ref`` (channels-last stays so)."""
    fmt = (
        torch.channels_last
        if ref.dim() == 4
        and not ref.is_contiguous()
        and ref.is_contiguous(memory_format=torch.channels_last)
        else torch.contiguous_format
    )
    return t.contiguous(memory_format=fmt)


class RowProgress:
    """A member's progress over its rows, for its :class:`ProgressTask`.

    Work is counted in row-steps (one row through one step). Rows still
    attacked have every step left to run, rows of later passes (slices of
    targets) all their steps: the ETA scales the elapsed time by those over
    the row-steps run, from shapes alone. The broken samples are counted
    (a host sync) only when a line is written.

    Args:
        task (ProgressTask): The member's task.
        samples (int): Samples attacked.
        rows (int): Their rows (targets x restarts x samples).
        steps (int): Steps of every row.
        rows_per_target (int, optional): Rows of one target (targets are
            outer), to name the targets a pass runs. Defaults to None
            (untargeted).
    """

    def __init__(
        self, task, samples: int, rows: int, steps: int, rows_per_target: Optional[int] = None
    ):
        self.task, self.samples, self.rows, self.steps = task, samples, rows, steps
        self.rows_per_target = rows_per_target
        self.run = 0  # row-steps run
        self.later = rows  # rows of the passes not started
        self.alive = self.step = self.pass_no = 0
        self.passes, self.targets = 1, ''
        self.broken = self.pass_groups = self.pass_broken = None

    def start_pass(
        self, pass_no: int, passes: int, first: int, end: int, rows: int, broken: torch.Tensor
    ) -> None:
        """Pass ``pass_no`` runs ``rows`` of the rows ``[first, end)``;
        ``broken`` (per sample) is updated in place after each pass."""
        self.pass_no, self.passes, self.later = pass_no, passes, self.rows - end
        self.alive, self.step, self.broken = rows, 0, broken
        self.pass_groups = self.pass_broken = None
        if self.rows_per_target:
            t0, t1 = first // self.rows_per_target + 1, (end - 1) // self.rows_per_target + 1
            self.targets = f'target {t0}' if t0 == t1 else f'targets {t0}-{t1}'

    def pass_rows(self, groups: torch.Tensor, broken: torch.Tensor) -> None:
        """The sample of each row of the pass and the rows' broken flags
        (updated in place by the member)."""
        self.pass_groups, self.pass_broken = groups, broken

    def step_done(self, step: int, alive: int) -> None:
        """Step ``step`` of the pass ran on ``alive`` rows (a shape: no sync)."""
        self.run += alive
        self.alive, self.step = alive, step
        self.task.update(self.run, self._total, self._status)

    def _total(self) -> int:
        return self.run + self.alive * (self.steps - self.step) + self.later * self.steps

    def num_broken(self) -> int:
        broken = self.broken.clone()
        if self.pass_groups is not None:
            broken[self.pass_groups[self.pass_broken]] = True
        return int(broken.sum())

    def _status(self) -> str:
        n = self.num_broken()
        where = (
            f'step {self.step}/{self.steps}'
            + (f', {self.targets}' if self.targets else '')
            + (f' (pass {self.pass_no + 1}/{self.passes})' if self.passes > 1 else '')
        )
        return f'{where}: {n} of {self.samples} samples broken, {self.samples - n} still robust'


def end_status(samples: int, broken: torch.Tensor) -> Callable[[], str]:
    """A member's end line (a callable: the count syncs only when written)."""

    def status():
        n = int(broken.sum())
        return f'{n} of {samples} samples broken, {samples - n} robust'

    return status


def run_rows(
    rows: int,
    groups: torch.Tensor,
    chunk: Optional[int],
    fn: Callable[[torch.Tensor], Tuple[torch.Tensor, torch.Tensor]],
    num_groups: int,
    like_rows: torch.Tensor,
    progress: Optional[RowProgress] = None,
):
    """Run ``fn`` on slices of ``rows`` rows; a group leaves after a break.

    ``fn(idx)`` attacks the rows ``idx`` and returns ``(broken, adv)`` per
    row. Rows are in the reference's order (target / restart outer, sample
    inner); a sample broken in one slice has its later rows skipped, as the
    reference skips broken samples. Returns per group whether it was broken
    and the adversarial image of its first breaking row. ``progress`` is
    told where each slice starts.
    """
    broken = torch.zeros(num_groups, dtype=torch.bool, device=groups.device)
    adv = like_rows.clone()
    step = rows if not chunk else chunk
    for start in range(0, rows, step):
        idx = torch.arange(start, min(start + step, rows), device=groups.device)
        idx = idx[~broken[groups[idx]]]
        if progress is not None:
            progress.start_pass(
                start // step, -(-rows // step), start, min(start + step, rows), len(idx), broken
            )
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


class RowBatch:
    """The rows of a member's step loop, each in a group (its sample).

    A row that breaks is recorded (:meth:`leave`) and every row of its
    group stops: ``active`` turns False on the device, without a host read.
    Rows that stopped stay in the batch, masked (no effect on the others),
    until :meth:`compact` drops them from every per-row tensor. The per-row
    tensors are the keyword arguments of the constructor and of :meth:`add`,
    read and set as attributes (``batch.x``); one given as None (an
    untargeted attack's target) stays None.

    Args:
        groups (torch.Tensor): (R,) the group of each row.
        images (torch.Tensor): (R, C, H, W) the rows' clean images, the
            result of the rows that do not break.
        progress (RowProgress, optional): Told of the rows' groups and of
            their broken flags. Defaults to None.
        **tensors: Per-row tensors, (R, ...).

    Attributes:
        broken (torch.Tensor): (R,) bool per row of the start: whether it
            broke.
        adv (torch.Tensor): (R, C, H, W) per row of the start: the image it
            broke at, else its clean image.
        alive (torch.Tensor): The start index of each row still in the
            batch.
        active (torch.Tensor): Per row in the batch, whether it still
            attacks.
    """

    # rows that stopped are dropped from the batch every that many steps
    # (one host read each time)
    COMPACT_EVERY = 2

    def __init__(
        self,
        groups: torch.Tensor,
        images: torch.Tensor,
        progress: Optional[RowProgress] = None,
        **tensors: Optional[torch.Tensor],
    ):
        rows, device = len(groups), images.device
        self.broken = torch.zeros(rows, dtype=torch.bool, device=device)
        self.adv = images.clone()
        # each row's group as 0..G-1: one read, before the steps
        group_ids, self._gid = torch.unique(groups, return_inverse=True)
        self._num_groups = len(group_ids)
        self._per_row = {}
        self.add(
            alive=torch.arange(rows, device=device),
            active=torch.ones(rows, dtype=torch.bool, device=device),
            **tensors,
        )
        if progress is not None:
            progress.pass_rows(groups, self.broken)

    def add(self, **tensors: Optional[torch.Tensor]) -> None:
        """Set per-row tensors of the rows now in the batch."""
        for name, value in tensors.items():
            setattr(self, name, value)
        self._per_row.update(dict.fromkeys(tensors))

    def compact(self, step: int) -> bool:
        """At every ``COMPACT_EVERY``-th ``step`` (from 0), drop the rows
        that stopped; False when no row is left."""
        if step % self.COMPACT_EVERY:
            return True
        num_active = int(self.active.sum())
        if num_active < len(self.active):
            keep = rows_where(self.active, num_active)
            for name in self._per_row:
                value = getattr(self, name)
                if value is not None:
                    setattr(self, name, value[keep])
        return num_active > 0

    def leave(self, hit: torch.Tensor, images: torch.Tensor) -> None:
        """Record the rows ``hit`` (bool, active ones only) as broken at
        their ``images``; every row of their groups stops."""
        alive, gid = self.alive, self._gid
        self.broken[alive] = self.broken[alive] | hit
        self.adv[alive] = torch.where(hit[:, None, None, None], images, self.adv[alive])
        left = (
            torch.zeros(self._num_groups, dtype=torch.int32, device=hit.device).index_add_(
                0, gid[alive], hit.int()
            )
            > 0
        )
        self.active = self.active & ~left[gid[alive]]


class AutoAttackMember:
    """Base of AutoAttack's members: the call around ``perturb``.

    ``perturb(model, images, labels, keys, clean_logits, progress) -> (adv,
    broken)`` attacks the clean-correct samples and returns, for every
    sample, the adversarial image found (the clean one where none was) and
    whether it was broken, writing its progress to the
    :class:`ProgressReporter` ``progress`` in a task named ``title``. A
    member sets ``seed`` (the keys of its random numbers when a call gives
    none) and ``title``, and implements :meth:`attack_correct`, the attack
    of the correct samples alone.

    Args:
        eps (float): L-inf radius in pixel units of 255.
        norm (str): Only 'Linf'.
        seed (int): Keys of the random numbers when a call gives none.
    """

    # under autocast: fp32 logits, safe gradients, fp32 decisions to leave
    amp_safe = True

    def __init__(self, eps: float, norm: str, seed: int):
        check_common(type(self).__name__, eps, norm, seed)
        self.eps, self.norm, self.seed = eps, norm, seed

    def __call__(
        self,
        model,
        images: torch.Tensor,
        labels: torch.Tensor,
        keys: Optional[torch.Tensor] = None,
        progress: ProgressReporter = NO_PROGRESS,
    ) -> torch.Tensor:
        """Attack ``images`` (N, C, H, W) in [0, 1]; returns detached images.

        ``progress`` gets the member's progress lines (no effect on the
        result)."""
        check_images(type(self).__name__, images, labels)
        keys = default_keys(keys, len(images), self.seed, images.device)
        # the clean decision (which samples are attacked, the targets) in fp32
        logits = fp32_logits(model, images)
        if autocast_dtype(images.device.type) is not None:
            model = precision_safe(model)
        adv, _ = self.perturb(model, images.detach(), labels, keys, logits, progress=progress)
        return adv

    @property
    def title(self) -> str:
        """The member's name in progress lines (AutoAttack's names)."""
        raise NotImplementedError

    def perturb(
        self,
        model,
        images: torch.Tensor,
        labels: torch.Tensor,
        keys: torch.Tensor,
        clean_logits: torch.Tensor,
        progress: ProgressReporter = NO_PROGRESS,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Attack the clean-correct samples; ``(adv, broken)`` for all.

        Args:
            model (Callable): Maps [0, 1] images to logits.
            images (torch.Tensor): (N, C, H, W) in [0, 1], detached.
            labels (torch.Tensor): (N,) class indices.
            keys (torch.Tensor): (N,) the samples' random keys.
            clean_logits (torch.Tensor): The model's logits on ``images``
                (the clean pass, shared by the AutoAttack members).
            progress (ProgressReporter): Gets the lines of task ``title``.

        Returns:
            tuple[torch.Tensor, torch.Tensor]: Per sample the adversarial
            image found (the clean one where none was) and whether the
            attack broke it (False for the samples misclassified clean).
        """
        adv = images.clone()
        broken = torch.zeros(len(images), dtype=torch.bool, device=images.device)
        todo = survivor_rows(clean_logits.argmax(1) == labels)
        if not len(todo):
            return adv, broken
        with progress.task(self.title) as task:
            got, got_adv = self.attack_correct(
                model, images[todo], labels[todo], keys[todo], clean_logits[todo], task
            )
            task.end(end_status(len(todo), got), always=True)
        broken[todo] = got
        adv[todo] = torch.where(got[:, None, None, None], got_adv, adv[todo])
        return adv, broken

    def attack_correct(self, model, images, labels, keys, clean_logits, task):
        """Attack samples the model classifies correctly (the arguments of
        :meth:`perturb`, those samples only); ``(broken, adv)`` per sample,
        ``adv`` meaningful where ``broken``. ``task`` (a
        :class:`ProgressTask`) gets the progress."""
        raise NotImplementedError
