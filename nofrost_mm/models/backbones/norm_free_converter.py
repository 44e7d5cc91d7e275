"""Turn a BatchNorm ResNet-family backbone into a normalizer-free one.

NoFrost's point is that removing every normalizer helps adversarial
training; this converter lets any mmpretrain ResNet-family config become
normalizer-free by changing one config key (``NormFreeConverter``).
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer
from mmengine.logging import print_log
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.models.backbones.resnet import BasicBlock, Bottleneck
from mmpretrain.models.utils import SELayer
from mmpretrain.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from ..layers import RELU_GAMMA, ScaledWSConv2d
from .nf_resnet import NormFreeBlock, nf_block_scales

# normalizers whose statistics are not per-batch-channel: removing them is
# not the NF recipe, and the residual scaling below does not replace them
_UNSUPPORTED_NORMS = (nn.LayerNorm, nn.GroupNorm, _InstanceNorm,
                      nn.LocalResponseNorm)


def _check_norms(module: nn.Module):
    for name, m in module.named_modules():
        if isinstance(m, _UNSUPPORTED_NORMS):
            raise TypeError(
                f'convert_to_normfree: cannot remove {type(m).__name__} at '
                f'"{name or "<root>"}": only BatchNorm layers (BN, SyncBN) '
                'are supported; build the model with norm_cfg=dict(type='
                "'BN') before converting")


def _to_scaled_ws(conv: nn.Conv2d, gamma: float, eps: float) -> nn.Conv2d:
    """A ScaledWSConv2d with the conv's weights (and a zero bias if none)."""
    if isinstance(conv, ScaledWSConv2d):
        return conv
    if conv.padding_mode != 'zeros' or isinstance(conv.padding, str):
        raise ValueError(f'convert_to_normfree: conv {conv} uses padding='
                         f'{conv.padding!r}, padding_mode='
                         f"{conv.padding_mode!r}; only explicit zero padding "
                         'is supported')
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
        dtype=conv.weight.dtype)
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
    """BN -> Identity and Conv2d -> ScaledWSConv2d, in place by name."""
    for name, child in module.named_children():
        if isinstance(child, SELayer):
            # its 1x1 convs act on pooled features, as in timm's NF SE nets
            continue
        if isinstance(child, _BatchNorm):
            setattr(module, name, nn.Identity())
        elif isinstance(child, nn.Conv2d):
            setattr(module, name, _to_scaled_ws(child, gamma, eps))
        else:
            _replace_layers(child, gamma, eps)


def _convert_block(block: nn.Module, alpha: float, beta: float,
                   act_cfg: dict, attn_gain: float) -> NormFreeBlock:
    convs = [block.conv1, block.conv2]
    if isinstance(block, Bottleneck):
        convs.append(block.conv3)
    drop_path = getattr(block, 'drop_path', None)
    nf_block = NormFreeBlock(
        convs,
        downsample=block.downsample,
        alpha=alpha,
        beta=beta,
        act_cfg=act_cfg,
        se_layer=getattr(block, 'se_layer', None),
        attn_gain=attn_gain,
        drop_path_rate=getattr(drop_path, 'drop_prob', 0.),
        with_cp=block.with_cp)
    # keep the attributes necks and user code read from mmpretrain blocks
    for attr in ('in_channels', 'out_channels', 'mid_channels', 'expansion'):
        if hasattr(block, attr):
            setattr(nf_block, attr, getattr(block, attr))
    nf_block.train(block.training)
    return nf_block


def _replace_blocks(module: nn.Module, state: dict):
    for name, child in module.named_children():
        if isinstance(child, (BasicBlock, Bottleneck)):
            beta, state['var'] = nf_block_scales(
                state['var'], state['alpha'], child.downsample is not None)
            setattr(
                module, name,
                _convert_block(child, state['alpha'], beta, state['act_cfg'],
                               state['attn_gain']))
            state['count'] += 1
        else:
            _replace_blocks(child, state)


def convert_to_normfree(module: nn.Module,
                        alpha: float = 0.2,
                        gamma: float = RELU_GAMMA,
                        eps: float = 1e-5,
                        zero_init_last: bool = True,
                        attn_gain: float = 2.0,
                        act_cfg: dict = dict(type='ReLU')) -> nn.Module:
    """Make a BatchNorm ResNet-family model normalizer-free (NF-ResNet).

    * every BatchNorm (incl. SyncBN) becomes ``nn.Identity``;
    * every ``nn.Conv2d`` becomes a :class:`ScaledWSConv2d` holding the same
      weights (plus a zero bias taking over the BN shift), except the 1x1
      convs inside SE layers;
    * every mmpretrain ``BasicBlock``/``Bottleneck`` (ResNet, ResNetV1c,
      ResNetV1d, ResNeXt, SEResNet, ResNet_CIFAR) becomes a
      :class:`NormFreeBlock` reusing its convs, shortcut and SE layer: a
      pre-activation block ``h + alpha * f(relu(h) * beta)`` with ``beta``
      the inverse expected standard deviation of the residual stream
      (reset by transition blocks), which keeps signal propagation bounded
      at any depth. SE outputs are multiplied by ``attn_gain``.

    Parameter names stay the same minus the BN ones (plus conv ``gain`` and
    ``bias``). The stem keeps its activation. Blocks are pre-activation, so
    the outputs of a converted backbone are the un-activated residual stream;
    :class:`NormFreeConverter` applies the final activation.

    Args:
        module (nn.Module): Model to convert (changed in place).
        alpha (float): Residual branch scale. Defaults to 0.2.
        gamma (float): Activation gain folded into each conv.
            Defaults to ReLU's.
        eps (float): Weight-standardization epsilon. Defaults to 1e-5.
        zero_init_last (bool): Zero the gain of each block's last conv so
            blocks start as the identity (SkipInit). Defaults to True.
        attn_gain (float): Gain on SE outputs. Defaults to 2.0.
        act_cfg (dict): Activation of the converted blocks.
            Defaults to ``dict(type='ReLU')``.

    Returns:
        nn.Module: The converted model (``module`` itself unless it is a
        single conv or BN layer).

    Raises:
        TypeError: If the model holds LayerNorm, GroupNorm, InstanceNorm or
            LocalResponseNorm layers (message names the module path).
    """
    _check_norms(module)
    if isinstance(module, _BatchNorm):
        return nn.Identity()
    if isinstance(module, nn.Conv2d):
        return _to_scaled_ws(module, gamma, eps)
    state = dict(
        var=1., alpha=alpha, act_cfg=act_cfg, attn_gain=attn_gain, count=0)
    _replace_blocks(module, state)
    if state['count'] == 0:
        print_log(
            f'convert_to_normfree: no ResNet blocks in {type(module).__name__}'
            '; removed its BN layers without residual scaling',
            logger='current')
    _replace_layers(module, gamma, eps)
    if zero_init_last:
        for m in module.modules():
            if isinstance(m, NormFreeBlock):
                nn.init.zeros_(m.last_conv.gain)
    return module


@MODELS.register_module()
class NormFreeConverter(BaseBackbone):
    """Build a backbone and make it normalizer-free.

    Wraps any ResNet-family backbone config (ResNet, ResNetV1c, ResNetV1d,
    ResNeXt, SEResNet, ResNet_CIFAR) and applies :func:`convert_to_normfree`,
    then passes each output through the final activation the pre-activation
    blocks leave out. Parameters live under ``backbone.``.

    Args:
        backbone (dict): Config of the backbone to convert.
        alpha (float): Residual branch scale. Defaults to 0.2.
        gamma (float): Activation gain folded into convs. Defaults to ReLU's.
        eps (float): Weight-standardization epsilon. Defaults to 1e-5.
        zero_init_last (bool): SkipInit zero gains. Defaults to True.
        attn_gain (float): Gain on SE outputs. Defaults to 2.0.
        act_cfg (dict): Activation config. Defaults to ``dict(type='ReLU')``.
        init_cfg (dict, optional): Initialization config. The wrapped
            backbone keeps its own ``init_cfg`` (e.g. ``Pretrained``).
            Defaults to None.

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
    """

    def __init__(self,
                 backbone: dict,
                 alpha: float = 0.2,
                 gamma: float = RELU_GAMMA,
                 eps: float = 1e-5,
                 zero_init_last: bool = True,
                 attn_gain: float = 2.0,
                 act_cfg: dict = dict(type='ReLU'),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if not isinstance(backbone, dict) or 'type' not in backbone:
            raise TypeError('NormFreeConverter: backbone must be a config '
                            f"dict with a 'type', got {backbone!r}")
        self.backbone = convert_to_normfree(
            MODELS.build(backbone),
            alpha=alpha,
            gamma=gamma,
            eps=eps,
            zero_init_last=zero_init_last,
            attn_gain=attn_gain,
            act_cfg=act_cfg)
        self.zero_init_last = zero_init_last
        self.final_act = build_activation_layer(act_cfg)

    def init_weights(self):
        super().init_weights()
        # SkipInit only when training from scratch: with a Pretrained
        # init_cfg (BN-era weights, no gains) the branches start active, as
        # ResNet suppresses zero_init_residual for pretrained models
        init_cfg = getattr(self.backbone, 'init_cfg', None)
        pretrained = isinstance(init_cfg,
                                dict) and init_cfg.get('type') == 'Pretrained'
        if self.zero_init_last:
            for m in self.backbone.modules():
                if isinstance(m, NormFreeBlock):
                    nn.init.constant_(m.last_conv.gain, float(pretrained))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return tuple(self.final_act(out) for out in self.backbone(x))
