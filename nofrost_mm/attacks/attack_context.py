"""The one way the plug-in changes a model's state for a while: train/eval
mode, ``requires_grad``, normalization running statistics, restored on exit."""

import types
from contextlib import contextmanager
from typing import Iterator, Optional

import torch.nn as nn
from mmengine.model import is_model_wrapper
from torch.nn.modules.batchnorm import _BatchNorm, _NormBase

_RUNNING_BUFFERS = ('running_mean', 'running_var', 'num_batches_tracked')
# how `model_state` keeps normalization running statistics
RUNNING_STATS = (None, 'restore', 'unchanged')


@contextmanager
def model_state(
    model: nn.Module,
    train_mode: Optional[bool] = None,
    requires_grad: Optional[bool] = None,
    running_stats: Optional[str] = None,
) -> Iterator[nn.Module]:
    """Set a model's mode, gradient flags and statistics; restore them on exit.

    On exit, whether the body returned or raised, every submodule's
    ``training`` flag and every parameter's ``requires_grad`` flag are what
    they were on entry (mixed modes, frozen parameters included).

    Args:
        model (nn.Module): The (unwrapped) model.
        train_mode (bool, optional): ``model.train(train_mode)`` on entry;
            None keeps the modes (a callee may change them: they are
            restored all the same). Defaults to None.
        requires_grad (bool, optional): Every parameter's flag on entry;
            None keeps them. Defaults to None.
        running_stats (str, optional): What train-mode passes inside do to
            the running statistics (mean, var, batch count) of tracking
            normalization layers (BatchNorm, SyncBatchNorm, InstanceNorm with
            tracking): None lets them update; 'restore' saves them on entry
            and copies them back on exit; 'unchanged' sets the momentum to 0
            inside (running = 1 * running + 0 * batch) and copies only the
            batch counts back, for passes whose graph outlives the context
            (a backward after an in-place restore of buffers that the
            normalization's backward reads would fail). Defaults to None.

    Yields:
        nn.Module: ``model``.
    """
    if running_stats not in RUNNING_STATS:
        raise ValueError(
            f'model_state: running_stats must be one of {RUNNING_STATS}, got {running_stats!r}'
        )
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    norms = [m for m in model.modules() if isinstance(m, _NormBase) and m.track_running_stats]
    if running_stats == 'restore':
        saved = [
            (
                m,
                {
                    name: getattr(m, name).clone()
                    for name in _RUNNING_BUFFERS
                    if getattr(m, name, None) is not None
                },
            )
            for m in norms
        ]
    elif running_stats == 'unchanged':
        saved = [
            (m, m.momentum, m.num_batches_tracked.clone())
            for m in norms
            if m.num_batches_tracked is not None
        ]
    try:
        if train_mode is not None:
            model.train(train_mode)
        if requires_grad is not None:
            for p, _ in flags:
                p.requires_grad_(requires_grad)
        if running_stats == 'unchanged':
            for m, _, _ in saved:
                m.momentum = 0.0
        yield model
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in flags:
            p.requires_grad_(flag)
        if running_stats == 'restore':
            for m, buffers in saved:
                for name, value in buffers.items():
                    getattr(m, name).copy_(value)
        elif running_stats == 'unchanged':
            for m, momentum, count in saved:
                m.momentum = momentum
                m.num_batches_tracked.copy_(count)


@contextmanager
def attack_context(model: nn.Module, train_mode: bool = False) -> Iterator[nn.Module]:
    """Prepare a model for generating adversarial examples, then restore it.

    Inside the context the (unwrapped) model is in eval mode, or in train mode
    when ``train_mode`` is True, and no parameter requires gradients, so an
    attack computes input gradients only. Running statistics of normalization
    layers are frozen even in train mode: the attack's forward passes use
    batch statistics but leave the running buffers exactly as they were, and
    a ``SyncBatchNorm`` normalises with this process's batch alone (no
    collective: ranks attack different numbers of steps and survivors; in
    eval mode it uses its running statistics and syncs nothing anyway). DDP
    and other mmengine wrappers are unwrapped, so the attack neither
    synchronises gradients nor broadcasts buffers. A model sharded by FSDP
    is refused: its unwrapped module holds this rank's shard of the weights,
    not the model. Everything is restored on exit (:func:`model_state`).

    Args:
        model (nn.Module): The classifier, possibly wrapped (DDP and the
            other mmengine wrappers but FSDP).
        train_mode (bool): Attack the model in train mode (dropout, drop path
            and batch statistics active) instead of eval mode.
            Defaults to False.

    Yields:
        nn.Module: The unwrapped model, to be used by the attack.

    Example:
        >>> with attack_context(runner.model) as net:
        ...     adv = attack(NormalizedClassifier(net, mean, std), x, y)
    """
    check_not_sharded(model)
    if is_model_wrapper(model):
        model = model.module
    # batch statistics are used in train mode, so restoring the running
    # buffers afterwards is exactly "never updated"
    with (
        model_state(
            model,
            train_mode=train_mode,
            requires_grad=False,
            running_stats='restore' if train_mode else None,
        ),
        local_sync_batch_norm(model if train_mode else None),
    ):
        yield model


def check_not_sharded(model: nn.Module) -> None:
    """Raise when ``model`` (or a part of it) is wrapped by FSDP."""
    try:
        from torch.distributed import fsdp
    except ImportError:  # a torch built without distributed support
        return
    kinds = tuple(
        k
        for k in (
            getattr(fsdp, 'FullyShardedDataParallel', None),
            getattr(fsdp, 'FSDPModule', None),
        )
        if k is not None
    )
    if kinds and any(isinstance(m, kinds) for m in model.modules()):
        raise ValueError(
            'attack_context: the model is sharded by FSDP, whose module holds '
            "this rank's shard of the weights, not the model an attack needs; "
            'use DDP (model_wrapper_cfg=dict(type=\'MMDistributedDataParallel\'), '
            "mmengine's default) for adversarial training and robust tests"
        )


@contextmanager
def local_sync_batch_norm(model: Optional[nn.Module]) -> Iterator[None]:
    """Inside, every ``SyncBatchNorm`` of ``model`` runs as a BatchNorm of this
    process's batch (``_BatchNorm.forward``): no collective per attack step
    (ranks would wait at different steps). None: nothing changes."""
    syncs = (
        []
        if model is None
        else [
            (m, m.__dict__.get('forward'))
            for m in model.modules()
            if isinstance(m, nn.SyncBatchNorm)
        ]
    )
    try:
        for m, _ in syncs:
            m.forward = types.MethodType(_BatchNorm.forward, m)
        yield
    finally:
        for m, own in syncs:
            if own is None:
                del m.forward
            else:
                m.forward = own
