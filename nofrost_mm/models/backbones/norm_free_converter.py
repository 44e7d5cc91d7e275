"""Turn a BatchNorm ResNet-family backbone into a normalizer-free one.

NoFrost's point is that removing every normalizer helps adversarial
training; this converter lets an mmpretrain ResNet-family config become
normalizer-free by changing one config key (``NormFreeConverter``).
"""

import inspect
from dataclasses import dataclass, field, fields
from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer
from mmpretrain.models.backbones import (
    RegNet,
    ResNet,
    ResNet_CIFAR,
    ResNetV1c,
    ResNetV1d,
    ResNeXt,
    SEResNet,
    SEResNeXt,
)
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.models.backbones.resnet import BasicBlock, Bottleneck
from mmpretrain.models.utils import SELayer
from mmpretrain.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from ..layers import RELU_GAMMA, ScaledWSConv2d
from .nf_resnet import NormFreeBlock, nf_block_scales

# The backbones whose stem and blocks the converter knows, by exact class: a
# subclass may change the forward (mmpretrain's Res2Net and ResNeSt are
# ResNets whose blocks compute something else).
RESNET_FAMILY = (ResNet, ResNetV1c, ResNetV1d, ResNet_CIFAR, ResNeXt, SEResNet, SEResNeXt, RegNet)
RESNET_FAMILY_NAMES = tuple(cls.__name__ for cls in RESNET_FAMILY)

# normalizers whose statistics are not per-batch-channel: removing them is
# not the NF recipe, and the residual scaling below does not replace them
_UNSUPPORTED_NORMS = (nn.LayerNorm, nn.GroupNorm, _InstanceNorm, nn.LocalResponseNorm)
_INSTEAD = (
    "for a normalizer-free net use the plug-in's NFResNet / "
    "NFResNet_CIFAR backbones (configs/_base_/models/nf-resnet*.py)"
)


@dataclass
class NormFreeOptions:
    """How :func:`convert_to_normfree` makes a backbone normalizer-free: its
    keyword arguments and :class:`NormFreeConverter`'s config keys.

    Args:
        alpha (float): Residual branch scale. Defaults to 0.2.
        gamma (float): Activation gain folded into each conv.
            Defaults to ReLU's.
        eps (float): Weight-standardization epsilon. Defaults to 1e-5.
        zero_init_last (bool): Zero the gain of each block's last conv so
            blocks start as the identity (SkipInit). Defaults to True.
        attn_gain (float): Gain on SE outputs. Defaults to 2.0.
        act_cfg (dict): Activation of the converted blocks (and of
            :class:`NormFreeConverter`'s outputs).
            Defaults to ``dict(type='ReLU')``.
        allow_non_resnet (bool): Also accept a module outside the ResNet
            family (e.g. VGG or MobileNetV2 with BN, a single layer) and
            only remove its BatchNorms and standardize its convs (scaled
            WS). Nothing scales its residual branches and its stem is left
            as it is, so its signal propagation at initialisation is
            whatever the architecture gives (not the NF guarantee).
            LayerNorm, GroupNorm and InstanceNorm stay unsupported.
            Defaults to False (such a module is refused).
    """

    alpha: float = 0.2
    gamma: float = RELU_GAMMA
    eps: float = 1e-5
    zero_init_last: bool = True
    attn_gain: float = 2.0
    act_cfg: dict = field(default_factory=lambda: dict(type='ReLU'))
    allow_non_resnet: bool = False

    @classmethod
    def build(cls, where: str, options: dict) -> 'NormFreeOptions':
        """The options given by name to ``where``, refusing unknown names."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise TypeError(f'{where}: unknown options {unknown}; the options are {names}')
        return cls(**options)


def _check_convertible(module: nn.Module, allow_non_resnet: bool):
    name = type(module).__name__
    norm_path, norm = next(
        ((path, m) for path, m in module.named_modules() if isinstance(m, _UNSUPPORTED_NORMS)),
        (None, None),
    )
    if type(module) not in RESNET_FAMILY and not allow_non_resnet:
        message = (
            f'NormFreeConverter: backbone.type={name!r} (model.backbone.'
            'backbone.type in a config) is not supported: it converts the '
            f'ResNet family of mmpretrain ({", ".join(RESNET_FAMILY_NAMES)}) '
            'into NF-ResNets (residual branches scaled by alpha and beta). '
            f'Instead, {_INSTEAD}'
        )
        if norm is None:
            message += (
                f'; to only remove the BatchNorms of {name} (no '
                'residual scaling, so no normalizer-free signal '
                'propagation) set allow_non_resnet=True'
            )
        else:
            message += (
                f' ({name} normalizes with {type(norm).__name__}, '
                'which the converter does not remove)'
            )
        raise TypeError(message)
    if norm is not None:
        # BN instead is advice for the ResNets only: other backbones may not
        # run with it (mmpretrain's ConvNeXt does not)
        fix = (
            "build it with its default norm_cfg=dict(type='BN') or, "
            if type(module) in RESNET_FAMILY
            else ''
        )
        raise TypeError(
            f'NormFreeConverter: cannot remove {type(norm).__name__} at '
            f'"{norm_path or "<root>"}" of {name}: only BatchNorm layers '
            f'(BN, SyncBN) are removed; {fix}{_INSTEAD}'
        )


class _RemovedNorm(nn.Identity):
    """What a removed BatchNorm becomes: the identity, whatever the caller
    passes besides the input (some backbones hand their norms extra
    arguments, e.g. ConvNeXt's ``data_format``)."""

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return x


def _to_scaled_ws(conv: nn.Conv2d, gamma: float, eps: float) -> nn.Conv2d:
    """A ScaledWSConv2d with the conv's weights (and a zero bias if none)."""
    if isinstance(conv, ScaledWSConv2d):
        return conv
    if conv.padding_mode != 'zeros' or isinstance(conv.padding, str):
        raise ValueError(
            f'convert_to_normfree: conv {conv} uses padding='
            f'{conv.padding!r}, padding_mode='
            f"{conv.padding_mode!r}; only explicit zero padding "
            'is supported'
        )
    new = ScaledWSConv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=True,  # takes over the removed BN's shift
        gamma=gamma,
        eps=eps,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    new.train(conv.training)
    with torch.no_grad():
        new.weight.copy_(conv.weight)
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
        else:
            new.bias.zero_()
    new.weight.requires_grad_(conv.weight.requires_grad)
    return new


def _replace_layers(module: nn.Module, gamma: float, eps: float):
    """BN -> identity and Conv2d -> ScaledWSConv2d, in place by name."""
    for name, child in module.named_children():
        if isinstance(child, SELayer):
            # its 1x1 convs act on pooled features, as in timm's NF SE nets
            continue
        if isinstance(child, _BatchNorm):
            setattr(module, name, _RemovedNorm())
        elif isinstance(child, nn.Conv2d):
            setattr(module, name, _to_scaled_ws(child, gamma, eps))
        else:
            _replace_layers(child, gamma, eps)


def _convert_block(block: nn.Module, beta: float, options: NormFreeOptions) -> NormFreeBlock:
    convs = [block.conv1, block.conv2]
    if isinstance(block, Bottleneck):
        convs.append(block.conv3)
    drop_path = getattr(block, 'drop_path', None)
    nf_block = NormFreeBlock(
        convs,
        downsample=block.downsample,
        alpha=options.alpha,
        beta=beta,
        act_cfg=options.act_cfg,
        se_layer=getattr(block, 'se_layer', None),
        attn_gain=options.attn_gain,
        drop_path_rate=getattr(drop_path, 'drop_prob', 0.0),
        with_cp=block.with_cp,
    )
    # keep the attributes necks and user code read from mmpretrain blocks
    for attr in ('in_channels', 'out_channels', 'mid_channels', 'expansion'):
        if hasattr(block, attr):
            setattr(nf_block, attr, getattr(block, attr))
    nf_block.train(block.training)
    return nf_block


def _replace_blocks(module: nn.Module, options: NormFreeOptions, state: dict):
    """Residual blocks -> NormFreeBlocks, in place by name; ``state['var']``
    is the expected variance of the residual stream so far."""
    for name, child in module.named_children():
        if isinstance(child, (BasicBlock, Bottleneck)):
            beta, state['var'] = nf_block_scales(
                state['var'], options.alpha, child.downsample is not None
            )
            setattr(module, name, _convert_block(child, beta, options))
        else:
            _replace_blocks(child, options, state)


def _drop_stem_activation(backbone: nn.Module):
    """The stem's output goes to the blocks un-activated, as in timm's NF-ResNets.

    Blocks are pre-activation, and the gamma folded into their convs assumes
    the ReLU of a zero-mean signal (it keeps half the variance); a ReLU on the
    stem makes the residual stream non-negative, the blocks' ReLU then keeps
    all of it, and the first transition's shortcut conv amplifies the signal
    about 2.5x instead of preserving it.
    """
    if getattr(backbone, 'deep_stem', False):
        backbone.stem[-1].activate = nn.Identity()
    else:
        backbone.relu = nn.Identity()


def _spell_out_options(fn):
    """``fn`` whose signature shows its ``**options`` as the fields of
    :class:`NormFreeOptions`, with their defaults: what ``help()`` and the
    runner's config key check (``accepted_kwargs``) read."""
    signature = inspect.signature(fn)
    given = [p for p in signature.parameters.values() if p.kind != p.VAR_KEYWORD]
    defaults = NormFreeOptions()
    options = [
        inspect.Parameter(
            f.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=getattr(defaults, f.name),
            annotation=f.type,
        )
        for f in fields(NormFreeOptions)
    ]
    fn.__signature__ = signature.replace(parameters=given + options)
    return fn


@_spell_out_options
def convert_to_normfree(module: nn.Module, **options) -> nn.Module:
    """Make a BatchNorm ResNet-family backbone normalizer-free (NF-ResNet).

    Supported backbones, by exact class: mmpretrain's ResNet, ResNetV1c,
    ResNetV1d, ResNet_CIFAR, ResNeXt, SEResNet, SEResNeXt and RegNet
    (``RESNET_FAMILY``). Their conversion:

    * every BatchNorm (incl. SyncBN) becomes the identity;
    * every ``nn.Conv2d`` becomes a :class:`ScaledWSConv2d` holding the same
      weights (plus a zero bias taking over the BN shift), except the 1x1
      convs inside SE layers;
    * every residual block becomes a :class:`NormFreeBlock` reusing its
      convs, shortcut and SE layer: a pre-activation block
      ``h + alpha * f(relu(h) * beta)`` with ``beta`` the inverse expected
      standard deviation of the residual stream (reset by transition
      blocks), which keeps signal propagation bounded at any depth. SE
      outputs are multiplied by ``attn_gain``;
    * the stem's last activation is removed (the blocks activate their
      input), as in timm's NF-ResNets.

    Parameter names stay the same minus the BN ones (plus conv ``gain`` and
    ``bias``). Blocks are pre-activation, so the outputs of a converted
    backbone are the un-activated residual stream;
    :class:`NormFreeConverter` applies the final activation.

    Args:
        module (nn.Module): Backbone to convert (changed in place).
        **options: The fields of :class:`NormFreeOptions` (``alpha``,
            ``gamma``, ``eps``, ``zero_init_last``, ``attn_gain``,
            ``act_cfg``, ``allow_non_resnet``), at its defaults when absent.

    Returns:
        nn.Module: The converted model (``module`` itself unless it is a
        single conv or BN layer).

    Raises:
        TypeError: If the module is outside the ResNet family (without
            ``allow_non_resnet``), or holds LayerNorm, GroupNorm,
            InstanceNorm or LocalResponseNorm layers (the message names the
            module path), or an option is unknown.
    """
    return _convert(module, NormFreeOptions.build('convert_to_normfree', options))


def _convert(module: nn.Module, options: NormFreeOptions) -> nn.Module:
    _check_convertible(module, options.allow_non_resnet)
    if isinstance(module, _BatchNorm):
        return _RemovedNorm()
    if isinstance(module, nn.Conv2d):
        return _to_scaled_ws(module, options.gamma, options.eps)
    if type(module) in RESNET_FAMILY:
        _replace_blocks(module, options, dict(var=1.0))
        _drop_stem_activation(module)
    _replace_layers(module, options.gamma, options.eps)
    if options.zero_init_last:
        for m in module.modules():
            if isinstance(m, NormFreeBlock):
                nn.init.zeros_(m.last_conv.gain)
    return module


@MODELS.register_module()
class NormFreeConverter(BaseBackbone):
    """Build a backbone and make it normalizer-free.

    Wraps a ResNet-family backbone config (mmpretrain's ResNet, ResNetV1c,
    ResNetV1d, ResNet_CIFAR, ResNeXt, SEResNet, SEResNeXt, RegNet) and
    applies :func:`convert_to_normfree`, then passes each output through the
    final activation the pre-activation blocks leave out. Parameters live
    under ``backbone.``. Another backbone type is refused when the model is
    built, before any training, unless ``allow_non_resnet`` is set.

    Args:
        backbone (dict): Config of the backbone to convert.
        init_cfg (dict, optional): Initialization config. The wrapped
            backbone keeps its own ``init_cfg`` (e.g. ``Pretrained``).
            Defaults to None.
        **options: The fields of :class:`NormFreeOptions` (``alpha``,
            ``gamma``, ``eps``, ``zero_init_last``, ``attn_gain``,
            ``act_cfg``, ``allow_non_resnet``), at its defaults when absent.
            A backbone converted with ``allow_non_resnet`` returns its
            outputs as it makes them (no final activation).

    Example:
        >>> model = dict(
        ...     type='ImageClassifier',
        ...     backbone=dict(
        ...         type='NormFreeConverter',
        ...         backbone=dict(type='ResNet', depth=50),
        ...         alpha=0.2),
        ...     neck=dict(type='GlobalAveragePooling'),
        ...     head=dict(type='LinearClsHead', num_classes=1000,
        ...               in_channels=2048))

        In a config that inherits its backbone, replace it whole
        (``_delete_=True``), else the inherited keys (depth, norm_cfg, ...)
        are merged into the converter's arguments::

            _base_ = ['mmpretrain::resnet/resnet18_8xb32_in1k.py']
            model = dict(backbone=dict(
                _delete_=True, type='NormFreeConverter',
                backbone=dict(type='ResNet', depth=18), alpha=0.2))
    """

    @_spell_out_options
    def __init__(self, backbone: dict, init_cfg: Optional[dict] = None, **options):
        super().__init__(init_cfg)
        if not isinstance(backbone, dict) or 'type' not in backbone:
            raise TypeError(
                'NormFreeConverter: backbone must be a config '
                f"dict with a 'type', got {backbone!r}"
            )
        self.options = NormFreeOptions.build('NormFreeConverter', options)
        self.backbone = _convert(MODELS.build(backbone), self.options)
        # pre-activation blocks leave their outputs un-activated; a backbone
        # only stripped of its BNs returns what it always returned
        self.final_act = (
            build_activation_layer(self.options.act_cfg)
            if type(self.backbone) in RESNET_FAMILY
            else nn.Identity()
        )

    def init_weights(self):
        super().init_weights()
        # SkipInit only when training from scratch: with a Pretrained
        # init_cfg (BN-era weights, no gains) the branches start active, as
        # ResNet suppresses zero_init_residual for pretrained models
        init_cfg = getattr(self.backbone, 'init_cfg', None)
        pretrained = isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained'
        if self.options.zero_init_last:
            for m in self.backbone.modules():
                if isinstance(m, NormFreeBlock):
                    nn.init.constant_(m.last_conv.gain, float(pretrained))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return tuple(self.final_act(out) for out in self.backbone(x))
