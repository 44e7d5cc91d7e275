"""Convolution with Scaled Weight Standardization (NF-ResNets, NFNets).

Brock, De, Smith. "Characterizing signal propagation to close the performance
gap in unnormalized ResNets", ICLR 2021 (https://arxiv.org/abs/2101.08692).

The formula is timm's ``ScaledStdConv2d`` (biased variance, standardization
fused into one ``F.batch_norm`` call over the reshaped weight), so weights and
outputs match timm's NF-ResNets exactly. mmcv's ``ConvWS`` (unbiased std) is
a different formula and is not interchangeable.
"""

from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS as MMENGINE_MODELS

# ReLU's variance-preserving gain sqrt(2 / (1 - 1 / pi)), from DeepMind's
# nfnets code (the value timm uses as ``_nonlin_gamma['relu']``).
RELU_GAMMA = 1.7139588594436646

IntOrPair = Union[int, Tuple[int, int]]


def _same_padding(kernel_size: int, stride: int, dilation: int) -> int:
    return ((stride - 1) + dilation * (kernel_size - 1)) // 2


# Registered in mmengine's root MODELS because mmcv's ``build_conv_layer``
# looks there (through the current scope's registry when one is set), so
# ``conv_cfg=dict(type='ScaledWSConv')`` works with and without a default scope.
@MMENGINE_MODELS.register_module('ScaledWSConv')
class ScaledWSConv2d(nn.Conv2d):
    """Conv2d with Scaled Weight Standardization.

    The weight used in the convolution is, per output channel,
    ``gain * gamma * (W - mean(W)) / (sqrt(var(W) + eps) * sqrt(fan_in))``
    where ``var`` is the biased variance over the channel's ``fan_in`` values
    and ``gain`` is a learnable per-channel scale. With zero-mean weights the
    output does not depend on the input's mean, and with ``gamma`` set to the
    preceding activation's gain the output variance equals the variance of
    the activation's input.

    Args:
        in_channels (int): Number of input channels.
        out_channels (int): Number of output channels.
        kernel_size (int | tuple[int, int]): Size of the kernel.
        stride (int | tuple[int, int]): Stride. Defaults to 1.
        padding (int | tuple[int, int], optional): Zero padding; ``None``
            pads to keep the size (up to the stride) as timm does.
            Defaults to None.
        dilation (int | tuple[int, int]): Dilation. Defaults to 1.
        groups (int): Number of groups. Defaults to 1.
        bias (bool): Whether to add a learnable bias. Defaults to True.
        gamma (float): Fixed gain folded into the weight, usually the gain
            of the activation before this conv (``RELU_GAMMA`` after a ReLU).
            Defaults to 1.0.
        eps (float): Added to the weight variance. Defaults to 1e-6 (timm's
            layer default; timm's NF-ResNets use 1e-5).
        gain_init (float): Initial value of the learnable gain; 0 makes a
            residual branch start as the identity (SkipInit).
            Defaults to 1.0.

    Example:
        >>> import torch
        >>> from mmcv.cnn import build_conv_layer
        >>> conv = build_conv_layer(
        ...     dict(type='ScaledWSConv', gamma=RELU_GAMMA), 16, 32, 3)
        >>> conv(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 32, 8, 8])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair,
        stride: IntOrPair = 1,
        padding: Optional[IntOrPair] = None,
        dilation: IntOrPair = 1,
        groups: int = 1,
        bias: bool = True,
        gamma: float = 1.0,
        eps: float = 1e-6,
        gain_init: float = 1.0,
        **kwargs,
    ):
        if not eps > 0:
            raise ValueError(f'ScaledWSConv2d: eps={eps} must be > 0')
        if padding is None:
            if not all(isinstance(v, int) for v in (kernel_size, stride, dilation)):
                raise ValueError(
                    'ScaledWSConv2d: padding=None (same padding) needs int '
                    f'kernel_size, stride and dilation, got {kernel_size}, '
                    f'{stride}, {dilation}; pass padding explicitly'
                )
            padding = _same_padding(kernel_size, stride, dilation)
        self.gain_init = gain_init
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
            **kwargs,
        )
        self.gamma = gamma
        self.eps = eps
        self.gain = nn.Parameter(
            torch.full(
                (out_channels, 1, 1, 1),
                float(gain_init),
                device=self.weight.device,
                dtype=self.weight.dtype,
            )
        )

    @property
    def scale(self) -> float:
        """``gamma / sqrt(fan_in)``, folded into the standardized weight."""
        return self.gamma * self.weight[0].numel() ** -0.5

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if hasattr(self, 'gain'):  # not yet created inside nn.Conv2d init
            nn.init.constant_(self.gain, self.gain_init)

    def standardized_weight(self) -> torch.Tensor:
        """The weight the convolution uses (standardized, scaled, gained)."""
        # one fused op: batch statistics of the (1, out, fan_in) view are the
        # per-output-channel mean and biased variance
        return F.batch_norm(
            self.weight.reshape(1, self.out_channels, -1),
            None,
            None,
            weight=(self.gain * self.scale).view(-1),
            training=True,
            momentum=0.0,
            eps=self.eps,
        ).reshape_as(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(
            x,
            self.standardized_weight(),
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )

    def extra_repr(self) -> str:
        return super().extra_repr() + f', gamma={self.gamma:.4g}, eps={self.eps:g}'
