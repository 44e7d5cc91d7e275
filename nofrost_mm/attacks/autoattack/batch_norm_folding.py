"""Eval-mode BatchNorm folded into the conv before it, for attacks that run a model many times.

In eval mode a ``BatchNorm2d`` is a per-channel affine map of its input. When
that input is a plain ``Conv2d``'s output, the affine map folds into the conv's
weight and bias (``torch.nn.utils.fusion.fuse_conv_bn_weights``): the same
function in real arithmetic, without the normalisation's separate passes over
the activations, whose backward was a quarter of a forward + input-gradient
pass of the demo BN ResNet on a 2-core CPU.

Which BN follows which conv is read from one forward pass (forward hooks: the
BN's input is the very tensor a conv returned), not from module order, and the
folded copy is checked against the model's own logits on the images it will
attack; if they differ by more than float rounding (a conv output that some
other layer also reads, for example) the model is used unfolded. Eval-mode
``SyncBatchNorm`` (a model converted for distributed training) is the same
affine map and folds too.

The folded copy is made once per model and kept while the model's weights,
buffers and modes stay as they are (a robust test calls AutoAttack once per
batch on the same model): a later call only checks it on its own images.
"""

import copy
import weakref
from typing import Tuple

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

# folded logits within this share of the largest logit count as the same model
FOLD_RTOL = 1e-3


# model -> (its state key, folded copy, BatchNorms folded): dropped with the model
_FOLDED = weakref.WeakKeyDictionary()


def _foldable_bn(module: nn.Module) -> bool:
    # eval-mode SyncBatchNorm normalises with its running buffers, no
    # collective: on a conv's (N, C, H, W) output it is BatchNorm2d
    return (
        isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm))
        and not module.training
        and module.running_mean is not None
        and module.running_var is not None
    )


def _plain_conv(module: nn.Module) -> bool:
    # subclasses with their own forward (weight standardisation...) are not
    # an affine map of their weight
    return (
        isinstance(module, nn.Conv2d)
        and type(module).forward is nn.Conv2d.forward
        and module.padding_mode == 'zeros'
    )


def conv_bn_pairs(model: nn.Module, images: torch.Tensor) -> list:
    """``(conv name, bn name)`` for every eval-mode BatchNorm2d whose input, in
    one forward pass on ``images``, is the output of a plain Conv2d; each
    module called exactly once."""
    names = {m: n for n, m in model.named_modules()}
    produced = {}  # id(output) -> (output, conv)
    calls = {}
    seen = []
    handles = []

    def conv_hook(module, args, output):
        calls[module] = calls.get(module, 0) + 1
        produced[id(output)] = (output, module)

    def bn_hook(module, args):
        calls[module] = calls.get(module, 0) + 1
        source = produced.get(id(args[0]))
        if source is not None and source[0] is args[0]:
            seen.append((source[1], module))

    try:
        for m in model.modules():
            if _plain_conv(m):
                handles.append(m.register_forward_hook(conv_hook))
            elif _foldable_bn(m):
                handles.append(m.register_forward_pre_hook(bn_hook))
        with torch.no_grad():
            model(images)
    finally:
        for h in handles:
            h.remove()
    return [(names[c], names[b]) for c, b in seen if calls.get(c) == 1 and calls.get(b) == 1]


def _set_submodule(model: nn.Module, name: str, module: nn.Module):
    parent, _, child = name.rpartition('.')
    setattr(model.get_submodule(parent) if parent else model, child, module)


def _state_key(model: nn.Module) -> tuple:
    """What a folded copy of ``model`` depends on: its modules and their
    modes, and each parameter's and buffer's storage and in-place version
    (an optimizer step or a loaded checkpoint changes the version)."""
    tensors = list(model.parameters()) + list(model.buffers())
    try:
        versions = tuple((id(t), t.data_ptr(), t._version, t.dtype, t.device) for t in tensors)
    except RuntimeError:  # inference-mode tensors keep no version: never reused
        return None
    return tuple((id(m), m.training) for m in model.modules()), versions


def _folded_copy(model: nn.Module, images: torch.Tensor) -> Tuple[nn.Module, int]:
    """A folded copy of ``model`` (unchecked) and its number of folds; made
    once while the model's state key stays the same."""
    key = _state_key(model)
    cached = _FOLDED.get(model)
    if cached is not None and key is not None and cached[0] == key:
        return (cached[1], cached[2]) if cached[2] else (model, 0)
    _FOLDED.pop(model, None)  # the old copy's memory first
    # the dataflow does not depend on the batch; two images keep the conv
    # outputs the hooks hold small
    pairs = conv_bn_pairs(model, images[:2])
    if not pairs:
        _FOLDED[model] = (key, None, 0)  # not the model: a weak key's value
        return model, 0
    folded = copy.deepcopy(model)
    with torch.no_grad():
        for conv_name, bn_name in pairs:
            conv = folded.get_submodule(conv_name)
            bn = folded.get_submodule(bn_name)
            weight, bias = fuse_conv_bn_weights(
                conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
            )
            # the fused weight keeps the conv's memory format (channels-last)
            fmt = (
                torch.channels_last
                if not conv.weight.is_contiguous()
                and conv.weight.is_contiguous(memory_format=torch.channels_last)
                else torch.contiguous_format
            )
            conv.weight = nn.Parameter(
                weight.detach().contiguous(memory_format=fmt), requires_grad=False
            )
            conv.bias = nn.Parameter(bias.detach(), requires_grad=False)
            _set_submodule(folded, bn_name, nn.Identity())
    folded.requires_grad_(False)
    # the copy refers to no tensor of the model's, so the entry dies with it
    _FOLDED[model] = (key, folded, len(pairs))
    return folded, len(pairs)


def fold_batch_norm(
    model: nn.Module, images: torch.Tensor, logits: torch.Tensor
) -> Tuple[nn.Module, int]:
    """The model with its conv-fed eval BatchNorms folded, and how many.

    The copy is reused by later calls on the same, unchanged model (see the
    module docstring); each call checks it on its own ``images``.

    Args:
        model (nn.Module): The classifier in eval mode (not modified).
        images (Tensor): Images it will be attacked on.
        logits (Tensor): ``model(images)``, the reference of the check.

    Returns:
        tuple: A folded copy (no parameter requires gradients) and the number
        of BatchNorms folded, or ``(model, 0)`` when none can be folded or the
        folded copy's logits differ from ``logits`` beyond float rounding.
    """
    folded, count = _folded_copy(model, images)
    if not count:
        return model, 0
    with torch.no_grad():
        check = folded(images).float()
    scale = float(logits.abs().max()) or 1.0
    if not bool((check - logits.float()).abs().max() <= FOLD_RTOL * scale):
        return model, 0
    return folded, count
