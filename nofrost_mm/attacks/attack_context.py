"""A context manager that makes a classifier safe to attack and leaves it as it was."""
from contextlib import contextmanager, nullcontext
from typing import Iterator

import torch.nn as nn
from mmengine.model import is_model_wrapper
from torch.nn.modules.batchnorm import _NormBase

_RUNNING_BUFFERS = ('running_mean', 'running_var', 'num_batches_tracked')


@contextmanager
def attack_context(model: nn.Module, train_mode: bool = False) -> Iterator[nn.Module]:
    """Prepare a model for generating adversarial examples, then restore it.

    Inside the context the (unwrapped) model is in eval mode, or in train mode
    when ``train_mode`` is True, and no parameter requires gradients, so an
    attack computes input gradients only. Running statistics of normalization
    layers (BatchNorm, SyncBatchNorm, InstanceNorm with tracking) are frozen
    even in train mode: the attack's forward passes use batch statistics but
    leave the running buffers exactly as they were. DDP and other mmengine
    wrappers are unwrapped, so the attack neither synchronises gradients nor
    broadcasts buffers.

    On exit, whether the body returned or raised, every submodule's
    ``training`` flag and every parameter's ``requires_grad`` flag are
    restored exactly.

    Args:
        model (nn.Module): The classifier, possibly wrapped (DDP, FSDP...).
        train_mode (bool): Attack the model in train mode (dropout, drop path
            and batch statistics active) instead of eval mode.
            Defaults to False.

    Yields:
        nn.Module: The unwrapped model, to be used by the attack.

    Example:
        >>> with attack_context(runner.model) as net:
        ...     adv = attack(NormalizedClassifier(net, mean, std), x, y)
    """
    if is_model_wrapper(model):
        model = model.module
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.train(train_mode)
        for p, _ in flags:
            p.requires_grad_(False)
        # batch statistics are used in train mode, so restoring the running
        # buffers afterwards is exactly "never updated"
        with frozen_running_stats(model) if train_mode else nullcontext():
            yield model
    finally:
        for m, training in modes:
            m.training = training
        for p, requires_grad in flags:
            p.requires_grad_(requires_grad)


@contextmanager
def frozen_running_stats(model: nn.Module) -> Iterator[nn.Module]:
    """Run train-mode forward passes without changing normalization statistics.

    The running buffers (mean, var, batch count) of every tracking
    normalization layer are saved on entry and copied back on exit, whether
    the body returned or raised. Used by the train-mode attack and by the
    extra forward pass of adversarial weight perturbation.

    Args:
        model (nn.Module): The (unwrapped) model.

    Yields:
        nn.Module: ``model``.
    """
    frozen = [(m, {name: getattr(m, name).clone() for name in _RUNNING_BUFFERS
                   if getattr(m, name, None) is not None})
              for m in model.modules()
              if isinstance(m, _NormBase) and m.track_running_stats]
    try:
        yield model
    finally:
        for m, saved in frozen:
            for name, value in saved.items():
                getattr(m, name).copy_(value)
