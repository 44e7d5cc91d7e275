"""Normalizer-free ResNets (NF-ResNets).

Brock, De, Smith. "Characterizing signal propagation to close the performance
gap in unnormalized ResNets", ICLR 2021 (https://arxiv.org/abs/2101.08692),
as used by NoFrost (Wang et al., "Removing Batch Normalization Boosts
Adversarial Training", ICML 2022). The block maths follow timm's
``NormFreeBlock`` (``timm/models/nfnet.py``), so NF-ResNet-26/50/101 here
compute the same function as timm's ``nf_resnet26/50/101`` once the weights
are renamed (``tools/model_converters/timm_nfresnet_to_mmpretrain.py``).
"""

import math
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_activation_layer, build_conv_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.registry import MODELS

from ..layers import RELU_GAMMA


def nf_block_scales(expected_var: float, alpha: float, is_transition: bool) -> Tuple[float, float]:
    """Input scale of a block and the expected variance after it.

    A block computes ``h + alpha * f(act(h) * beta)`` with
    ``beta = 1 / sqrt(Var(h))``, so its output variance is
    ``Var(h) + alpha**2``. A transition block (one with a shortcut conv) takes
    its shortcut from the scaled input, which resets the variance to 1 before
    the branch is added.

    Args:
        expected_var (float): Expected variance of the block's input.
        alpha (float): Residual branch scale.
        is_transition (bool): Whether the block has a shortcut conv.

    Returns:
        tuple[float, float]: ``beta`` for this block and the expected variance
        of its output.
    """
    beta = 1.0 / math.sqrt(expected_var)
    if is_transition:
        expected_var = 1.0
    return beta, expected_var + alpha**2


class NormFreeBlock(BaseModule):
    """Normalizer-free pre-activation residual block.

    ``out = shortcut + alpha * drop_path(f(act(x) * beta))`` where ``f`` runs
    ``conv1, act, conv2[, act, conv3]`` (then an optional SE layer whose
    output is multiplied by ``attn_gain``) and the shortcut is ``x``, or
    ``downsample(act(x) * beta)`` in transition blocks.

    The block takes already-built convs so that :class:`NFBasicBlock`,
    :class:`NFBottleneck` and blocks converted from BN ResNets by
    :func:`convert_to_normfree` share this one forward.

    Args:
        convs (Sequence[nn.Module]): The residual branch's convs, registered
            as ``conv1``, ``conv2``, ...
        downsample (nn.Module, optional): Shortcut of a transition block,
            applied to the scaled, pre-activated input. Defaults to None.
        alpha (float): Residual branch scale. Defaults to 0.2.
        beta (float): Input scale, ``1 / sqrt(expected input variance)``.
            Defaults to 1.0.
        act_cfg (dict): Activation config. Defaults to ``dict(type='ReLU')``.
        se_layer (nn.Module, optional): Squeeze-excitation module applied to
            the branch output. Defaults to None.
        attn_gain (float): Multiplies the SE output to undo the sigmoid's
            variance loss (timm's NF correction). Defaults to 2.0.
        drop_path_rate (float): Stochastic depth rate. Defaults to 0.
        with_cp (bool): Use gradient checkpointing. Defaults to False.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(
        self,
        convs: Sequence[nn.Module],
        downsample: Optional[nn.Module] = None,
        alpha: float = 0.2,
        beta: float = 1.0,
        act_cfg: dict = dict(type='ReLU'),
        se_layer: Optional[nn.Module] = None,
        attn_gain: float = 2.0,
        drop_path_rate: float = 0.0,
        with_cp: bool = False,
        init_cfg: Optional[dict] = None,
    ):
        super().__init__(init_cfg=init_cfg)
        if len(convs) == 0:
            raise ValueError('NormFreeBlock: convs must hold at least one conv')
        self.num_convs = len(convs)
        for i, conv in enumerate(convs, 1):
            self.add_module(f'conv{i}', conv)
        self.downsample = downsample
        self.se_layer = se_layer
        self.alpha = alpha
        self.beta = beta
        self.attn_gain = attn_gain
        # the pre-activation keeps x intact for the identity shortcut
        self.act = build_activation_layer(act_cfg)
        inner_cfg = dict(act_cfg)
        if inner_cfg['type'] in ('ReLU', 'SiLU', 'LeakyReLU', 'ReLU6'):
            inner_cfg['inplace'] = True
        self.inner_act = build_activation_layer(inner_cfg)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.with_cp = with_cp

    @property
    def last_conv(self) -> nn.Module:
        """The branch's last conv (its gain is zero-initialised)."""
        return getattr(self, f'conv{self.num_convs}')

    def residual_branch(self, x: torch.Tensor) -> torch.Tensor:
        """``f(act(x) * beta)``: the branch before alpha (for analysis)."""
        out = self.act(x) * self.beta
        return self._branch(out)

    def _branch(self, out: torch.Tensor) -> torch.Tensor:
        out = self.conv1(out)
        for i in range(2, self.num_convs + 1):
            out = getattr(self, f'conv{i}')(self.inner_act(out))
        if self.se_layer is not None:
            out = self.se_layer(out) * self.attn_gain
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:

        def _inner_forward(x):
            out = self.act(x) * self.beta
            shortcut = x if self.downsample is None else self.downsample(out)
            out = self.drop_path(self._branch(out))
            # one fused pass: shortcut + alpha * out
            return torch.add(shortcut, out, alpha=self.alpha)

        if self.with_cp and x.requires_grad:
            return cp.checkpoint(_inner_forward, x, use_reentrant=False)
        return _inner_forward(x)

    def extra_repr(self) -> str:
        return f'alpha={self.alpha}, beta={self.beta:.4f}'


class _NFResNetBlock(NormFreeBlock):
    """Channel bookkeeping of :class:`NFBasicBlock` and :class:`NFBottleneck`.

    Subclasses set ``expansion`` and build their convs in :meth:`make_convs`.
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        expansion: Optional[int] = None,
        stride: int = 1,
        conv_cfg: dict = dict(type='ScaledWSConv'),
        zero_init_last: bool = True,
        **kwargs,
    ):
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.expansion = expansion or type(self).expansion
        self.mid_channels = out_channels // self.expansion
        last_gain = 0.0 if zero_init_last else 1.0
        super().__init__(self.make_convs(conv_cfg, stride, last_gain), **kwargs)

    def make_convs(self, conv_cfg: dict, stride: int, last_gain: float) -> List[nn.Module]:
        raise NotImplementedError


class NFBasicBlock(_NFResNetBlock):
    """NF pre-activation basic block: two 3x3 convs.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        expansion (int, optional): Ratio of ``out_channels`` to the mid
            channels. Defaults to None (1).
        stride (int): Stride of the first conv. Defaults to 1.
        conv_cfg (dict): Config of the (scaled WS) convs.
        zero_init_last (bool): Zero-initialise the last conv's gain so the
            block starts as the identity. Defaults to True.
        **kwargs: Passed to :class:`NormFreeBlock`.
    """

    expansion = 1

    def make_convs(self, conv_cfg, stride, last_gain):
        mid = self.mid_channels
        return [
            build_conv_layer(conv_cfg, self.in_channels, mid, 3, stride=stride),
            build_conv_layer(conv_cfg, mid, self.out_channels, 3, gain_init=last_gain),
        ]


class NFBottleneck(_NFResNetBlock):
    """NF pre-activation bottleneck block: 1x1, 3x3 (strided), 1x1 convs.

    Args as :class:`NFBasicBlock`, except: the default ``expansion`` (None)
    is 4, and ``stride`` is the stride of the 3x3 conv.
    """

    expansion = 4

    def make_convs(self, conv_cfg, stride, last_gain):
        mid = self.mid_channels
        return [
            build_conv_layer(conv_cfg, self.in_channels, mid, 1),
            build_conv_layer(conv_cfg, mid, mid, 3, stride=stride),
            build_conv_layer(conv_cfg, mid, self.out_channels, 1, gain_init=last_gain),
        ]


@MODELS.register_module()
class NFResNet(BaseBackbone):
    """Normalizer-free ResNet backbone (NF-ResNet).

    A pre-activation ResNet without normalization layers: convs use scaled
    weight standardization (:class:`ScaledWSConv2d`), each residual branch
    sees its input divided by the expected standard deviation of the
    residual stream (``beta``) and is scaled by ``alpha`` before the
    addition. Shortcut convs (by default ResNet-D style: 2x2 average pool,
    then a 1x1 conv) take the pre-activated, scaled input, which resets the
    expected variance. Depths 26/50/101 with the default arguments are
    timm's ``nf_resnet26/50/101``.

    Please refer to the `paper <https://arxiv.org/abs/2101.08692>`__.

    Args:
        depth (int): Network depth, from {18, 26, 34, 50, 101, 152}.
        in_channels (int): Number of input image channels. Defaults to 3.
        stem_channels (int): Output channels of the stem conv.
            Defaults to 64.
        base_channels (int): Mid channels of the first stage. Defaults to 64.
        expansion (int, optional): Block expansion; None uses 1 for basic
            and 4 for bottleneck blocks. Defaults to None.
        num_stages (int): Stages of the network. Defaults to 4.
        strides (Sequence[int]): Strides of the first block of each stage.
            Defaults to ``(1, 2, 2, 2)``.
        out_indices (Sequence[int]): Output from which stages (each output
            passes the final activation, as blocks are pre-activation).
            Defaults to ``(3, )``.
        alpha (float): Residual branch scale. Defaults to 0.2.
        avg_down (bool): Shortcut convs of transition blocks downsample
            with a 2x2 average pool then a 1x1 conv (ResNet-D, timm's
            NF-ResNets). False uses a strided 1x1 conv (the NF-ResNets of
            Brock et al.): the average pool lowers the variance at each
            transition below what ``beta`` predicts. Defaults to True.
        gamma (float): Gain of ``act_cfg``'s activation, folded into every
            conv's standardized weight. Defaults to ReLU's gain.
        conv_cfg (dict): Conv config; ``gamma`` is added to it.
            Defaults to ``dict(type='ScaledWSConv', eps=1e-5)`` (timm's).
        act_cfg (dict): Activation config. Defaults to ``dict(type='ReLU')``.
        zero_init_last (bool): Zero-initialise the gain of each block's last
            conv (SkipInit). Defaults to True.
        drop_path_rate (float): Stochastic depth rate, increasing linearly
            over blocks from 0. Defaults to 0.
        frozen_stages (int): Stages to freeze (stem is stage 0); -1 freezes
            nothing. Defaults to -1.
        with_cp (bool): Use gradient checkpointing in blocks.
            Defaults to False.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to kaiming-normal (fan-in, linear) convs, as timm.

    Example:
        >>> import torch
        >>> from nofrost_mm.models import NFResNet
        >>> model = NFResNet(depth=26, out_indices=(0, 1, 2, 3)).eval()
        >>> for out in model(torch.rand(1, 3, 64, 64)):
        ...     print(tuple(out.shape))
        (1, 256, 16, 16)
        (1, 512, 8, 8)
        (1, 1024, 4, 4)
        (1, 2048, 2, 2)
    """

    arch_settings = {
        18: (NFBasicBlock, (2, 2, 2, 2)),
        26: (NFBottleneck, (2, 2, 2, 2)),
        34: (NFBasicBlock, (3, 4, 6, 3)),
        50: (NFBottleneck, (3, 4, 6, 3)),
        101: (NFBottleneck, (3, 4, 23, 3)),
        152: (NFBottleneck, (3, 8, 36, 3)),
    }

    def __init__(
        self,
        depth: int,
        in_channels: int = 3,
        stem_channels: int = 64,
        base_channels: int = 64,
        expansion: Optional[int] = None,
        num_stages: int = 4,
        strides: Sequence[int] = (1, 2, 2, 2),
        out_indices: Sequence[int] = (3,),
        alpha: float = 0.2,
        avg_down: bool = True,
        gamma: float = RELU_GAMMA,
        conv_cfg: dict = dict(type='ScaledWSConv', eps=1e-5),
        act_cfg: dict = dict(type='ReLU'),
        zero_init_last: bool = True,
        drop_path_rate: float = 0.0,
        frozen_stages: int = -1,
        with_cp: bool = False,
        init_cfg=dict(
            type='Kaiming',
            layer=['Conv2d'],
            mode='fan_in',
            nonlinearity='linear',
            distribution='normal',
        ),
    ):
        super().__init__(init_cfg)
        if depth not in self.arch_settings:
            raise KeyError(
                f'NFResNet: invalid depth={depth}, allowed: {sorted(self.arch_settings)}'
            )
        if not 1 <= num_stages <= 4:
            raise ValueError(f'NFResNet: num_stages={num_stages} must be in 1..4')
        if len(strides) != num_stages:
            raise ValueError(
                f'NFResNet: strides={tuple(strides)} needs num_stages={num_stages} entries'
            )
        out_indices = tuple(i + num_stages if i < 0 else i for i in out_indices)
        if not out_indices or not all(0 <= i < num_stages for i in out_indices):
            raise ValueError(
                f'NFResNet: out_indices={out_indices} must be stage indices in 0..{num_stages - 1}'
            )
        if not 0 <= drop_path_rate < 1:
            raise ValueError(f'NFResNet: drop_path_rate={drop_path_rate} not in [0, 1)')
        self.depth = depth
        self.num_stages = num_stages
        self.out_indices = out_indices
        self.alpha = alpha
        self.avg_down = avg_down
        self.frozen_stages = frozen_stages
        self.conv_cfg = dict(conv_cfg, gamma=gamma)
        self.act_cfg = act_cfg
        self.block, stage_blocks = self.arch_settings[depth]
        self.stage_blocks = stage_blocks[:num_stages]
        self.expansion = expansion or self.block.expansion

        self._make_stem_layer(in_channels, stem_channels)

        dpr = torch.linspace(0, drop_path_rate, sum(self.stage_blocks)).tolist()
        expected_var = 1.0
        _in_channels = stem_channels
        _out_channels = base_channels * self.expansion
        self.res_layers = []
        for i, num_blocks in enumerate(self.stage_blocks):
            blocks = []
            for j in range(num_blocks):
                stride = strides[i] if j == 0 else 1
                downsample = None
                if stride != 1 or _in_channels != _out_channels:
                    downsample = self._make_downsample(_in_channels, _out_channels, stride)
                beta, expected_var = nf_block_scales(expected_var, alpha, downsample is not None)
                blocks.append(
                    self.block(
                        _in_channels,
                        _out_channels,
                        expansion=self.expansion,
                        stride=stride,
                        conv_cfg=self.conv_cfg,
                        zero_init_last=zero_init_last,
                        downsample=downsample,
                        alpha=alpha,
                        beta=beta,
                        act_cfg=act_cfg,
                        drop_path_rate=dpr.pop(0),
                        with_cp=with_cp,
                    )
                )
                _in_channels = _out_channels
            _out_channels *= 2
            layer_name = f'layer{i + 1}'
            self.add_module(layer_name, nn.Sequential(*blocks))
            self.res_layers.append(layer_name)
        # blocks are pre-activation: outputs get the activation they lack
        self.final_act = build_activation_layer(act_cfg)
        self.feat_dim = _in_channels
        self._freeze_stages()

    def _make_stem_layer(self, in_channels: int, stem_channels: int):
        """ImageNet stem: 7x7 stride-2 conv, then 3x3 max pool (no act)."""
        self.conv1 = build_conv_layer(self.conv_cfg, in_channels, stem_channels, 7, stride=2)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def _make_downsample(self, in_channels: int, out_channels: int, stride: int) -> nn.Module:
        if not self.avg_down:
            return nn.Sequential(
                OrderedDict(
                    conv=build_conv_layer(
                        self.conv_cfg, in_channels, out_channels, 1, stride=stride
                    )
                )
            )
        pool = (
            nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)
            if stride > 1
            else nn.Identity()
        )
        return nn.Sequential(
            OrderedDict(
                pool=pool, conv=build_conv_layer(self.conv_cfg, in_channels, out_channels, 1)
            )
        )

    def _freeze_stages(self):
        modules = []
        if self.frozen_stages >= 0:
            modules.append(self.conv1)
        modules += [
            getattr(self, f'layer{i}')
            for i in range(1, min(self.frozen_stages, self.num_stages) + 1)
        ]
        for m in modules:
            m.eval()
            for param in m.parameters():
                param.requires_grad = False

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x = self.maxpool(self.conv1(x))
        outs = []
        for i, layer_name in enumerate(self.res_layers):
            x = getattr(self, layer_name)(x)
            if i in self.out_indices:
                outs.append(self.final_act(x))
        return tuple(outs)

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        return self


@MODELS.register_module()
class NFResNet_CIFAR(NFResNet):
    """NF-ResNet for 32x32 inputs: a 3x3 stride-1 stem conv and no max pool.

    Same arguments as :class:`NFResNet` (compare mmpretrain's
    ``ResNet_CIFAR``).

    Example:
        >>> import torch
        >>> from nofrost_mm.models import NFResNet_CIFAR
        >>> model = NFResNet_CIFAR(depth=18, base_channels=16,
        ...                        stem_channels=16).eval()
        >>> tuple(model(torch.rand(1, 3, 32, 32))[-1].shape)
        (1, 128, 4, 4)
    """

    def _make_stem_layer(self, in_channels: int, stem_channels: int):
        self.conv1 = build_conv_layer(self.conv_cfg, in_channels, stem_channels, 3, stride=1)
        self.maxpool = nn.Identity()
