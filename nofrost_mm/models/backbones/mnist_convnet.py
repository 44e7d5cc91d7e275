"""The small MNIST CNNs of the adversarial-robustness literature.

- ``'fast-at'``: the net of "Fast is better than free" (Wong, Rice, Kolter,
  ICLR 2020; locuslab/fast_adversarial ``MNIST/mnist_net.py``): two 4x4
  stride-2 convs (16, 32), FC 100.
- ``'madry'``: the net of "Towards deep learning models resistant to
  adversarial attacks" (Madry et al., ICLR 2018; MadryLab/mnist_challenge
  ``model.py``): 5x5 convs (32, 64) with 'same' padding, each followed by a
  2x2 max pool, FC 1024.
- ``'smallcnn'``: TRADES' SmallCNN (Zhang et al., ICML 2019;
  yaodongyu/TRADES ``models/small_cnn.py``): 3x3 convs (32, 32, pool, 64,
  64, pool), FC 200, dropout 0.5, FC 200.

The last (10-way) layer of each is the classification head
(``LinearClsHead``); the backbone returns the last hidden layer.
"""

from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.registry import MODELS

from ..layers import RELU_GAMMA

# (out_channels, kernel, stride, padding, max pool after it)
FAST_AT_CONVS = ((16, 4, 2, 1, False), (32, 4, 2, 1, False))
MADRY_CONVS = ((32, 5, 1, 2, True), (64, 5, 1, 2, True))
SMALLCNN_CONVS = (
    (32, 3, 1, 0, False),
    (32, 3, 1, 0, True),
    (64, 3, 1, 0, False),
    (64, 3, 1, 0, True),
)


@MODELS.register_module()
class MNISTConvNet(BaseBackbone):
    """Plain CNNs for 28x28 MNIST: convs, ReLU, max pools, hidden FC layers.

    Each conv is ``conv [-> norm] -> ReLU [-> max pool 2x2]``, each hidden FC
    ``linear -> ReLU [-> dropout]``. Three variants of the same net:

    - no normalizer (``norm_cfg=None``, the papers' nets);
    - BN after every conv (``norm_cfg=dict(type='BN')``; the convs then
      have no bias);
    - normalizer-free (``conv_cfg=dict(type='ScaledWSConv')``): scaled
      weight-standardised convs (Brock et al. 2021), the first with gain 1
      (it sees pixels), every later one with ReLU's variance-preserving gain
      ``RELU_GAMMA``, so each conv's output has about the variance of its
      input's pre-activation; train it with the NF recipe (AGC,
      unit-variance inputs: see ``configs/mnist/``).

    Args:
        arch (str): 'fast-at', 'madry' or 'smallcnn'. Defaults to 'fast-at'.
        in_channels (int): Input channels. Defaults to 1.
        conv_cfg (dict, optional): Conv layer config; ``ScaledWSConv`` gets
            its ``gamma`` per layer as above. Defaults to None (Conv2d).
        norm_cfg (dict, optional): Norm layer after each conv (e.g.
            ``dict(type='BN')``); not with a scaled WS conv.
            Defaults to None.
        drop_rate (float, optional): Dropout after the first hidden FC;
            None uses the arch's (0.5 for 'smallcnn', else 0).
            Defaults to None.
        init_cfg (dict | list[dict], optional): Initialization config;
            None keeps PyTorch's default init (as fast_adversarial), except
            for 'smallcnn', whose default is TRADES' Kaiming-normal convs.
            Defaults to None.

    Example:
        >>> import torch
        >>> net = MNISTConvNet('fast-at')
        >>> [f.shape for f in net(torch.rand(2, 1, 28, 28))]
        [torch.Size([2, 100])]
    """

    # convs, hidden FC widths, dropout after the first FC
    arch_settings = {
        'fast-at': (FAST_AT_CONVS, (100,), 0.0),
        'madry': (MADRY_CONVS, (1024,), 0.0),
        'smallcnn': (SMALLCNN_CONVS, (200, 200), 0.5),
    }
    input_size = 28

    def __init__(
        self,
        arch: str = 'fast-at',
        in_channels: int = 1,
        conv_cfg: Optional[dict] = None,
        norm_cfg: Optional[dict] = None,
        drop_rate: Optional[float] = None,
        init_cfg: Optional[dict] = None,
    ):
        if arch not in self.arch_settings:
            raise ValueError(
                f'MNISTConvNet: arch must be one of {sorted(self.arch_settings)}, got {arch!r}'
            )
        scaled_ws = conv_cfg is not None and conv_cfg.get('type') == 'ScaledWSConv'
        if scaled_ws and norm_cfg is not None:
            raise ValueError(
                'MNISTConvNet: conv_cfg ScaledWSConv is the '
                f'normalizer-free variant; norm_cfg must be None, got '
                f'{norm_cfg!r}'
            )
        if drop_rate is not None and not 0 <= drop_rate < 1:
            raise ValueError(f'MNISTConvNet: drop_rate must be in [0, 1), got {drop_rate!r}')
        convs, fcs, arch_drop = self.arch_settings[arch]
        if init_cfg is None and arch == 'smallcnn':
            init_cfg = dict(
                type='Kaiming',
                layer='Conv2d',
                mode='fan_in',
                nonlinearity='relu',
                distribution='normal',
            )
        super().__init__(init_cfg=init_cfg)
        self.arch = arch
        self.drop_rate = arch_drop if drop_rate is None else drop_rate

        layers, channels, size = [], in_channels, self.input_size
        for i, (out, kernel, stride, padding, pool) in enumerate(convs):
            cfg = conv_cfg
            if scaled_ws:
                cfg = dict(conv_cfg, gamma=1.0 if i == 0 else RELU_GAMMA)
            layers.append(
                build_conv_layer(
                    cfg,
                    channels,
                    out,
                    kernel,
                    stride=stride,
                    padding=padding,
                    bias=norm_cfg is None,
                )
            )
            if norm_cfg is not None:
                layers.append(build_norm_layer(norm_cfg, out)[1])
            layers.append(nn.ReLU(inplace=True))
            size = (size + 2 * padding - kernel) // stride + 1
            if pool:
                layers.append(nn.MaxPool2d(2, 2))
                size //= 2
            channels = out
        self.features = nn.Sequential(*layers)

        hidden, width = [], channels * size * size
        for j, out in enumerate(fcs):
            hidden += [nn.Linear(width, out), nn.ReLU(inplace=True)]
            if j == 0 and self.drop_rate > 0:
                hidden.append(nn.Dropout(self.drop_rate))
            width = out
        self.hidden = nn.Sequential(*hidden)
        self.out_channels = width

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f'MNISTConvNet: inputs must be {self.input_size}x'
                f'{self.input_size}, got {tuple(x.shape[-2:])}'
            )
        return (self.hidden(self.features(x).flatten(1)),)
