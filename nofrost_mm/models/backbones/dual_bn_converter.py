"""Give every BatchNorm of a model a clean and an adversarial branch.

The dual-BN baseline (AdvProp, Xie et al. 2020; MBN-AT) for any mmpretrain
model with BatchNorm, by changing one config key (``DualBNConverter``) where
``norm_cfg=dict(type='DualBN')`` does not reach every BN.
"""

import torch.nn as nn
from mmpretrain.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from ..layers import DualBatchNorm
from ..layers.dual_batch_norm import BRANCHES

# normalizers that are not BatchNorm: a model normalized only by these has
# no batch statistics to split
_OTHER_NORMS = (
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.modules.instancenorm._InstanceNorm,
)


def _to_dual(bn: _BatchNorm, deploy_branch: str) -> DualBatchNorm:
    """A DualBatchNorm whose two branches both hold ``bn``'s state."""
    ref = bn.weight if bn.weight is not None else bn.running_mean
    dual = DualBatchNorm(
        bn.num_features,
        eps=bn.eps,
        momentum=bn.momentum,
        affine=bn.affine,
        track_running_stats=bn.track_running_stats,
        deploy_branch=deploy_branch,
        device=None if ref is None else ref.device,
        dtype=None if ref is None else ref.dtype,
    )
    dual.load_state_dict(bn.state_dict())
    if bn.affine:
        dual.weight.requires_grad_(bn.weight.requires_grad)
        dual.bias.requires_grad_(bn.bias.requires_grad)
    dual.train(bn.training)
    return dual


def _replace(module: nn.Module, deploy_branch: str) -> int:
    count = 0
    for name, child in module.named_children():
        if isinstance(child, DualBatchNorm):
            child.deploy_branch = deploy_branch
            count += 1
        elif isinstance(child, _BatchNorm) and not isinstance(
            child, nn.modules.instancenorm._InstanceNorm
        ):
            setattr(module, name, _to_dual(child, deploy_branch))
            count += 1
        else:
            count += _replace(child, deploy_branch)
    return count


def convert_dual_bn(module: nn.Module, deploy_branch: str = 'clean') -> nn.Module:
    """Replace every BatchNorm (1d/2d/3d, SyncBN) of ``module`` in place by a
    :class:`DualBatchNorm` whose two branches start from that BN's state.

    Parameter and buffer names stay those of the BN model; their tensors hold
    the two branches (clean half first). ``module`` may itself be a
    BatchNorm (the new layer is returned).

    Args:
        module (nn.Module): The model (changed in place).
        deploy_branch (str): The branch used outside a route (validation,
            testing): 'clean' or 'adv'. Defaults to 'clean'.

    Returns:
        nn.Module: The converted model.

    Raises:
        TypeError: If the model has no BatchNorm (the message names the
            normalizer it has, if any).
    """
    if deploy_branch not in BRANCHES:
        raise ValueError(
            f'DualBNConverter: deploy_branch must be one of {BRANCHES}, got {deploy_branch!r}'
        )
    if isinstance(module, _BatchNorm) and not isinstance(
        module, nn.modules.instancenorm._InstanceNorm
    ):
        return module if isinstance(module, DualBatchNorm) else _to_dual(module, deploy_branch)
    if _replace(module, deploy_branch) == 0:
        name = type(module).__name__
        other = next(
            (
                (path, type(m).__name__)
                for path, m in module.named_modules()
                if isinstance(m, _OTHER_NORMS)
            ),
            None,
        )
        has = (
            f'it normalizes with {other[1]} at "{other[0] or "<root>"}"'
            if other
            else 'it has no normalization layer'
        )
        raise TypeError(
            f'DualBNConverter: {name} has no BatchNorm layer to split into clean '
            f'and adversarial branches ({has}); it converts BatchNorm1d/2d/3d and '
            'SyncBatchNorm only. Build the model with BatchNorm (e.g. norm_cfg='
            "dict(type='BN')), or train it without DualBNConverter"
        )
    return module


def _build_dual_bn(module: dict, deploy_branch: str = 'clean') -> nn.Module:
    """Build ``module`` and give each of its BatchNorms two branches.

    Registered as ``DualBNConverter``. It returns the built model itself (its
    class, attributes and state-dict names are the BN model's), so a BN
    checkpoint of that model loads into both branches, and necks, heads and
    tools see the model they expect. Use it for a backbone, neck or head.

    Args:
        module (dict): Config of the model to build and convert.
        deploy_branch (str): The branch used outside a route (validation,
            ``tools/test.py``, AutoAttack): 'clean' or 'adv'.
            Defaults to 'clean'.

    Returns:
        nn.Module: The converted model.

    Example:
        >>> backbone = dict(
        ...     type='DualBNConverter',
        ...     module=dict(type='ResNet', depth=50),
        ...     deploy_branch='clean')

        In a config that inherits its backbone, replace it whole
        (``_delete_=True``). For mmpretrain backbones that take a
        ``norm_cfg``, ``norm_cfg=dict(type='DualBN')`` does the same.
    """
    if not isinstance(module, dict) or 'type' not in module:
        raise TypeError(
            f"DualBNConverter: module must be a config dict with a 'type', got {module!r}"
        )
    return convert_dual_bn(MODELS.build(module), deploy_branch)


MODELS.register_module('DualBNConverter', module=_build_dual_bn)
