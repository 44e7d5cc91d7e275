"""Attacks under autocast: fp32 logits and input gradients that neither underflow nor inflate.

Under ``--amp`` the network runs in fp16 or bf16. Three things then weaken an
attack silently, each of which makes a model look more robust than it is:

- the logit gradient of a confident sample (``p - y`` of a softmax at 1 - 1e-9)
  is below fp16's smallest number: cast to fp16 for the network's backward it
  becomes 0, and the input gradient is 0 (half of the entries of a model with
  logits x10 on the 8x8 digits). A constant loss scale applied after that cast
  (the 2**8 of the former ``GradScaledClassifier``) cannot bring them back;
- a loss or a decision computed from reduced-precision logits is rounded
  (bf16 keeps 8 bits);
- the decision "this image is misclassified" taken in reduced precision
  disagrees with fp32 for images close to the boundary, where minimum-norm
  attacks (FAB) put them.

:class:`PrecisionSafeClassifier` fixes the first two for any attack that
differentiates a loss of the logits: its logits are fp32, and in the backward
pass each sample's logit gradient is scaled, in fp32 and before it is cast for
the network, so that its largest entry is a power of two in the middle of
fp16's range; the input gradient is divided by the same factor in fp32 (a
power of two: exact, so sign and normalised steps are those of the unscaled
gradient). :func:`fp32_logits` and :func:`fp32_predict` take the decisions in
fp32 (autocast off). Under bf16, whose 8-bit logits leave an iterative
attack's last iterate within rounding of the boundary, :func:`fp32_polish`
gives each sample the attack leaves robust one more, fp32, step.
"""

import functools
import logging
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from nofrost_mm.utils.log_once import LogOnce

# The largest entry of each sample's scaled logit gradient lies in
# [2**LOGIT_GRAD_EXP, 2**(LOGIT_GRAD_EXP + 1)): 11 powers of two below fp16's
# largest number (65504) for the network to amplify it on the way to the
# input, 18 (28 with subnormals) above its smallest normal for the smallest
# input-gradient entries.
LOGIT_GRAD_EXP = 4
# an overflow lowers that exponent by this much for the rest of the attack
OVERFLOW_BACKOFF = 4
# no lower than this (a logit gradient of 2**-20 is still > 0 in fp16)
MIN_LOGIT_GRAD_EXP = -20
# fp32_polish: the precisions whose survivors take the fp32 step (bf16's
# last iterates stop within its rounding of the boundary; fp16's do not),
# and that step as a fraction of the attack's own (a full step breaks 2-5
# points more than the fp32 attack on the demo ResNet: a stronger attack, not
# the same one; a quarter recovers what bf16 lost)
POLISH_PRECISIONS = ('bf16',)
POLISH_STEP = 0.25
# names of the precisions in results and reports
PRECISION_NAMES = {torch.float32: 'fp32', torch.float16: 'fp16', torch.bfloat16: 'bf16'}


def autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    """The dtype autocast casts to on ``device_type`` now, or None when off."""
    if not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def precision_name(device_type: str) -> str:
    """'fp16', 'bf16' or 'fp32': the precision a network runs in here now."""
    return PRECISION_NAMES.get(autocast_dtype(device_type) or torch.float32, 'fp32')


@contextmanager
def autocast_off(device_type: str) -> Iterator[None]:
    """Disable autocast on ``device_type`` inside the block (fp32 models run fp32)."""
    with torch.autocast(device_type, enabled=False):
        yield


def fp32_logits(
    model_fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor
) -> torch.Tensor:
    """fp32 logits of ``images`` with autocast off: the decision of record.

    Whether an adversarial image is misclassified is always decided in fp32,
    whatever precision the attack ran in. No gradient is recorded.

    Args:
        model_fn (Callable): Maps [0, 1] images to logits.
        images (torch.Tensor): (N, C, H, W) images.

    Returns:
        torch.Tensor: (N, K) fp32 logits.
    """
    with torch.no_grad(), autocast_off(images.device.type):
        return model_fn(images).float()


def fp32_predict(
    model_fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor
) -> torch.Tensor:
    """(N,) predicted classes of ``images``, decided in fp32 (see :func:`fp32_logits`)."""
    return fp32_logits(model_fn, images).argmax(1)


class OverflowCounter:
    """Rows whose scaled input gradient overflowed, counted on the device.

    Shared by the :class:`PrecisionSafeClassifier` wrappers of one attack run
    (a copy with folded BatchNorms keeps its original's counter). Counting
    and the exponent's back-off are device operations: reading
    :attr:`count` (``int(counter)``) is the one host sync, for the caller to
    do once per attack call or at log time, never per step.
    """

    def __init__(self, exp: int = LOGIT_GRAD_EXP):
        self.initial_exp = exp
        self.rows: Optional[torch.Tensor] = None  # int64 count, on the device
        self.exp: Optional[torch.Tensor] = None  # current exponent (float)

    def _ensure(self, ref: torch.Tensor) -> None:
        if self.rows is None or self.rows.device != ref.device:
            self.rows = torch.zeros((), dtype=torch.int64, device=ref.device)
            self.exp = torch.full((), float(self.initial_exp), device=ref.device)

    def add(self, bad_rows: torch.Tensor) -> None:
        """Count ``bad_rows`` (bool (N,)) and back the exponent off if any."""
        self._ensure(bad_rows)
        self.rows += bad_rows.sum()
        backoff = bad_rows.any().to(self.exp.dtype) * OVERFLOW_BACKOFF
        self.exp = (self.exp - backoff).clamp_(min=MIN_LOGIT_GRAD_EXP)

    def __int__(self) -> int:
        return 0 if self.rows is None else int(self.rows)

    @property
    def count(self) -> int:
        """Rows that overflowed so far (one host sync)."""
        return int(self)

    def reset(self) -> None:
        """Forget the count and go back to the initial exponent."""
        self.rows = self.exp = None


class _ScaleState:
    """What the two halves of one backward pass share: the per-row scales.

    Only the first backward pass through the logits is scaled. A later one
    (the second order of ``create_graph=True``, as GradAlign takes) also
    reaches the input along the first pass's own, unscaled, graph, where a
    division at the input would be wrong: it runs unscaled (exact, without
    the underflow guard).
    """

    def __init__(self, counter: OverflowCounter, per_sample: bool):
        self.counter, self.per_sample = counter, per_sample
        self.scale: Optional[torch.Tensor] = None  # (N, 1) fp32 powers of two
        self.finite: Optional[torch.Tensor] = None  # (N,) logit gradient finite
        self.logit_passes = 0  # backward passes through the logits so far
        self.pending = False  # a scale set for the input's next backward


class _ScaleStateIdentity(torch.autograd.Function):
    """Identity forward that hands the :class:`_ScaleState` to its backward."""

    @staticmethod
    def forward(ctx, x, state):
        ctx.state = state
        return x.view_as(x)


class _ScaleLogitGrad(_ScaleStateIdentity):
    """Identity on the fp32 logits; backward scales each row's fp32 gradient
    so that its largest entry is ``2**exp`` (before the network's cast)."""

    @staticmethod
    def backward(ctx, grad):
        state = ctx.state
        state.logit_passes += 1
        if state.logit_passes > 1:  # a later pass: unscaled (see _ScaleState)
            state.pending = False
            return grad, None
        counter = state.counter
        counter._ensure(grad)
        state.pending = True
        with torch.no_grad():
            g = grad.detach().float()
            peak = g.abs().amax(dim=1)
            if not state.per_sample:  # rows interact (train-mode BatchNorm)
                peak = peak.amax().expand_as(peak)
            finite = torch.isfinite(peak)
            # peak = m * 2**e with m in [0.5, 1): scaled peak in [2**exp, 2**(exp+1))
            _, e = torch.frexp(peak)
            shift = (counter.exp - e.to(counter.exp.dtype) + 1).clamp_(-126, 126)
            usable = finite & (peak > 0)
            scale = torch.where(usable, torch.exp2(shift), torch.ones_like(shift))
            state.scale, state.finite = scale[:, None], finite
        return grad * state.scale.to(grad.dtype), None


class _UnscaleInputGrad(_ScaleStateIdentity):
    """Identity on the input; backward divides each row's gradient by its
    scale in fp32 and counts the rows that overflowed in the network."""

    @staticmethod
    def backward(ctx, grad):
        state = ctx.state
        if not state.pending:  # no scale in this pass (see _ScaleState)
            return grad, None
        state.pending = False
        scale = state.scale.view((-1,) + (1,) * (grad.dim() - 1))
        out = grad.float() / scale
        with torch.no_grad():
            row_finite = torch.isfinite(out.detach()).flatten(1).all(dim=1)
            # an overflow of ours: finite logit gradient, non-finite input one
            bad = state.finite & ~row_finite
            state.counter.add(bad)
        # a NaN row would poison the whole batch's images; the row is
        # counted (the caller re-runs or reports) and not moved this step
        keep = (~bad).view(scale.shape)
        out = torch.where(keep, out, torch.zeros_like(out))
        return out.to(grad.dtype), None


def _rows_interact(model_fn) -> bool:
    """True when a train-mode BatchNorm couples the rows of a batch."""
    if not isinstance(model_fn, nn.Module):
        return False
    return any(isinstance(m, _BatchNorm) and m.training for m in model_fn.modules())


class PrecisionSafeClassifier(nn.Module):
    """A classifier whose logits and input gradients are safe under autocast.

    ``forward(x)`` returns ``model_fn(x)`` as fp32 logits, so every loss and
    decision computed from them is fp32. When autocast is on for ``x``'s
    device and a gradient flows to ``x``, the backward pass scales each
    sample's logit gradient, in fp32 before it is cast to the network's
    precision, by a power of two that puts its largest entry at
    ``2**LOGIT_GRAD_EXP``, and divides the input gradient by the same factor
    in fp32: the gradient an attack sees is the network's gradient without
    fp16 underflow (0 only where it is 0 in fp32 too). With train-mode
    BatchNorm layers (rows interact) one factor serves the whole batch. It
    serves input gradients; a parameter gradient taken in the same (first)
    backward pass would keep the per-sample scale: attacks differentiate
    with respect to their input only (``torch.autograd.grad``), and
    parameter gradients under AMP are the loss scaler's job. A second
    backward pass through the first one's graph (``create_graph=True``, as
    GradAlign's) is exact and unscaled.

    A row whose scaled gradient overflows in the network (non-finite at the
    input) gets a zero gradient for that step, is counted in
    :attr:`overflows` (an :class:`OverflowCounter`, on the device: no host
    sync per step), and the exponent drops by ``OVERFLOW_BACKOFF`` for the
    later steps. Callers read the count once per attack (the robust test
    loop then re-runs that attack in fp32 and logs it) so that no attack
    is ever silently weaker.

    Without autocast it is an exact pass-through: ``model_fn(x)`` unchanged,
    bit-identical fp32 results.

    Args:
        model_fn (Callable): Maps [0, 1] images (N, C, H, W) to logits
            (N, K), e.g. a :class:`NormalizedClassifier`.
        overflows (OverflowCounter, optional): Counter to share with other
            wrappers (e.g. of a BatchNorm-folded copy of the same model);
            None makes a new one. Defaults to None.

    Example:
        >>> safe = PrecisionSafeClassifier(net)
        >>> with torch.autocast('cuda', dtype=torch.float16):
        ...     adv = attack(safe, images, labels)
        >>> robust = fp32_predict(net, adv) == labels
        >>> assert safe.overflows.count == 0
    """

    def __init__(
        self,
        model_fn: Callable[[torch.Tensor], torch.Tensor],
        overflows: Optional[OverflowCounter] = None,
    ):
        super().__init__()
        if isinstance(model_fn, PrecisionSafeClassifier):
            overflows = overflows or model_fn.overflows
            model_fn = model_fn.model_fn
        if not callable(model_fn):
            raise TypeError(
                'PrecisionSafeClassifier: model_fn must map images to '
                f'logits, got {type(model_fn).__name__}'
            )
        self.model_fn = model_fn
        self.overflows = overflows if overflows is not None else OverflowCounter()

    def with_model(
        self, model_fn: Callable[[torch.Tensor], torch.Tensor]
    ) -> 'PrecisionSafeClassifier':
        """The same safety around another function, sharing the counter."""
        return PrecisionSafeClassifier(model_fn, self.overflows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """fp32 logits of ``x``; under autocast with safely scaled gradients."""
        if autocast_dtype(x.device.type) is None:
            return self.model_fn(x)
        if not (torch.is_grad_enabled() and x.requires_grad):
            return self.model_fn(x).float()
        state = _ScaleState(self.overflows, not _rows_interact(self.model_fn))
        logits = self.model_fn(_UnscaleInputGrad.apply(x, state)).float()
        return _ScaleLogitGrad.apply(logits, state)


def precision_safe(model_fn: Callable[[torch.Tensor], torch.Tensor]) -> PrecisionSafeClassifier:
    """``model_fn`` as a :class:`PrecisionSafeClassifier` (itself if it is one)."""
    if isinstance(model_fn, PrecisionSafeClassifier):
        return model_fn
    return PrecisionSafeClassifier(model_fn)


class GradScaledClassifier(PrecisionSafeClassifier):
    """Deprecated name of :class:`PrecisionSafeClassifier` (its fixed 2**8
    scale acted after the fp16 cast of the logit gradient, too late to
    prevent underflow); ``scale`` is ignored.

    Args:
        model_fn (Callable): Maps [0, 1] images to logits.
        scale (float, optional): Ignored. Defaults to None.
    """

    def __init__(
        self, model_fn: Callable[[torch.Tensor], torch.Tensor], scale: Optional[float] = None
    ):
        super().__init__(model_fn)


def fp32_recheck(
    model_fn: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    candidates: torch.Tensor,
    values: torch.Tensor,
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """``values`` with the rows of ``candidates`` decided again in fp32.

    Under autocast, ``values[r]`` becomes ``fn(logits, rows)[i]`` for the
    ``candidates`` rows ``rows`` (``logits``: their fp32 logits, autocast
    off); without autocast ``values`` is returned as it is. Attacks call it
    where a reduced-precision decision would end a sample's attack (an
    iterate "misclassified", a margin "<= 0"): only those rows pay an fp32
    forward pass, and the index is read where the attack already reads
    which samples leave.

    Args:
        model_fn (Callable): Maps [0, 1] images to logits.
        images (torch.Tensor): (N, C, H, W) images.
        candidates (torch.Tensor): (N,) bool, the rows to decide again.
        values (torch.Tensor): (N, ...) the reduced-precision decisions.
        fn (Callable): ``fn(fp32_logits, rows)`` gives their new values.

    Returns:
        torch.Tensor: The decisions, fp32 for the candidates.
    """
    if autocast_dtype(images.device.type) is None:
        return values
    rows = candidates.nonzero()[:, 0]
    if len(rows):
        values = values.clone()
        values[rows] = fn(fp32_logits(model_fn, images[rows]), rows).to(values.dtype)
    return values


def confirm_misclassified(
    model_fn: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    candidates: torch.Tensor,
) -> torch.Tensor:
    """(N,) bool: the ``candidates`` whose fp32 prediction is not ``labels``.

    Without autocast the candidates themselves (decided in fp32 already);
    see :func:`fp32_recheck`.
    """
    return fp32_recheck(
        model_fn,
        images,
        candidates,
        candidates,
        lambda logits, rows: logits.argmax(1) != labels[rows],
    )


def attack_precision(attack, device_type: str) -> str:
    """The precision ``attack`` runs in if called now on ``device_type``.

    The autocast dtype's name ('fp16', 'bf16') for an attack that is safe
    in it, else 'fp32' (the robust test loops run such attacks with autocast
    off). An attack says where it is safe with its ``amp_safe`` attribute:
    True (every reduced precision), or the names of those where it is
    (``('fp16', )``). Parts that run in fp32 inside an attack are named by
    its ``fp32_parts`` (a tuple, or a dict from precision name to tuple):
    'bf16 (fab-t, square fp32)'.
    """
    if autocast_dtype(device_type) is None:
        return 'fp32'
    name = precision_name(device_type)
    safe = getattr(attack, 'amp_safe', False)
    if not (safe is True or isinstance(safe, (tuple, list)) and name in safe):
        return 'fp32'
    parts = getattr(attack, 'fp32_parts', ())
    if isinstance(parts, dict):
        parts = parts.get(name, ())
    return name + (f' ({", ".join(parts)} fp32)' if parts else '')


def safe_precision(
    attack, device_type: str, log_once: Callable[[str], bool], label: Optional[str] = None
) -> str:
    """:func:`attack_precision`, saying once when autocast is on but the
    attack runs in fp32.

    The one rule callers that run attacks under autocast (the training
    preprocessor, the robust test loops) apply before they call an attack:
    an attack not declared safe in the current precision runs with autocast
    off, never silently weaker, and ``log_once`` (a :class:`LogOnce`) gets
    one line naming it.

    Args:
        attack: The attack (its ``amp_safe`` / ``fp32_parts``).
        device_type (str): Where it runs ('cuda', 'cpu').
        log_once (Callable): Writes a message unless it was written before.
        label (str, optional): The attack's name in the line. Defaults to
            its type name.

    Returns:
        str: The precision it runs in ('fp32', 'bf16', 'fp16 (fab-t fp32)').
    """
    precision = attack_precision(attack, device_type)
    reduced = precision_name(device_type)
    if precision == 'fp32' and reduced != 'fp32':
        log_once(
            f'{label or type(attack).__name__} runs in fp32 under {reduced} '
            f'autocast: it is not known to be as strong in {reduced} '
            f'(amp_safe={getattr(attack, "amp_safe", None)!r})'
        )
    return precision


def log_fp32_once(owner, message: str) -> None:
    """Log ``message`` once per ``owner`` (an attack) at INFO level."""
    owner.__dict__.setdefault('_fp32_log_once', LogOnce(logging.INFO))(message)


def fp32_polish(
    owner,
    model_fn: Callable[[torch.Tensor], torch.Tensor],
    adv: torch.Tensor,
    truth: torch.Tensor,
    objective: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    step: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """``adv`` after one fp32 step of the samples it leaves robust (under bf16).

    Under autocast to one of ``POLISH_PRECISIONS`` (else ``adv`` is returned
    as it is): the rows whose fp32 prediction on ``adv`` is still ``truth``
    take one step of the attack's objective with autocast off, and a row
    keeps the stepped image only if it is misclassified in fp32. Nothing else
    changes: a sample is only ever broken by it. On the demo ResNet with
    logits x3 and x10, bf16 PGD-10 left samples at fp32 margins of 0.003-0.12
    (logits near 15: bf16 rounds them by 0.06) and up to 2 of 128 more
    robust than fp32; with this step, as many or fewer. The first call of
    each ``owner`` logs one line. Costs one fp32 forward of the batch and a
    forward and backward of the survivors; the index of the survivors is read
    once (a host sync per call, not per step).

    Args:
        owner: The attack (its name in the log line, its once-only log).
        model_fn (Callable): Maps [0, 1] images to logits.
        adv (torch.Tensor): (N, C, H, W) the attack's images.
        truth (torch.Tensor): (N,) true classes.
        objective (Callable): ``objective(fp32_logits, rows)``: the scalar the
            attack ascends, of the rows ``rows``.
        step (Callable): ``step(images, grad, rows)``: the rows' images after
            the attack's step scaled by ``POLISH_STEP``, projected.

    Returns:
        torch.Tensor: The images, those of the samples it broke replaced.
    """
    device_type = adv.device.type
    name = precision_name(device_type)
    if name not in POLISH_PRECISIONS:
        return adv
    log_fp32_once(
        owner,
        f'{type(owner).__name__}: under {name} autocast the samples '
        f'it leaves robust take one more step in fp32 ({POLISH_STEP:g} of its '
        f'step): {name} rounds the logits too coarsely to see the boundary '
        'its last iterates stop at',
    )
    with autocast_off(device_type):
        rows = (fp32_predict(model_fn, adv) == truth).nonzero()[:, 0]
        if not len(rows):
            return adv
        with torch.enable_grad():
            x = adv[rows].detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(objective(model_fn(x).float(), rows), x)
        moved = step(x.detach(), grad, rows)
        broken = fp32_predict(model_fn, moved) != truth[rows]
    adv = adv.clone()
    adv[rows[broken]] = moved[broken].to(adv.dtype)
    return adv


def fp32_under_autocast(reason: str, precisions=('fp16', 'bf16')):
    """Decorate an attack method to run with autocast off (logged once).

    For what cannot be made safe in reduced precision: under autocast to
    one of ``precisions`` the method runs in fp32 on the device of its
    first tensor argument, and the first such call writes one log line
    naming the attack and ``reason``.

    Args:
        reason (str): Why it needs fp32, for the log line.
        precisions (tuple[str]): Autocast precisions it is not safe in.
            Defaults to ('fp16', 'bf16').
    """

    def decorate(method):
        @functools.wraps(method)
        def wrapped(self, *args, **kwargs):
            tensor = next((a for a in args if isinstance(a, torch.Tensor)), None)
            device_type = tensor.device.type if tensor is not None else 'cpu'
            name = precision_name(device_type)
            if name not in precisions:
                return method(self, *args, **kwargs)
            log_fp32_once(
                self, f'{type(self).__name__} runs in fp32 under {name} autocast: {reason}'
            )
            with autocast_off(device_type):
                return method(self, *args, **kwargs)

        return wrapped

    return decorate
