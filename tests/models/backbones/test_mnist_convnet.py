"""MNISTConvNet: the literature's MNIST nets, with none, BN or NF convs."""

import pytest
import torch
import torch.nn as nn
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

from nofrost_mm.models.backbones import MNISTConvNet
from nofrost_mm.models.layers import RELU_GAMMA, ScaledWSConv2d

# backbone output width, and parameters of the whole original net (the 10-way
# last layer is the head here): fast_adversarial's mnist_net, Madry's model,
# TRADES' SmallCNN, counted from their layer lists
ARCHS = {
    'fast-at': (100, 165396 + 1010),
    'madry': (1024, 3264384 + 10250),
    'smallcnn': (200, 310192 + 2010),
}
VARIANTS = {
    'none': {},
    'BN': dict(norm_cfg=dict(type='BN')),
    'NF': dict(conv_cfg=dict(type='ScaledWSConv')),
}


@pytest.mark.parametrize('arch', ARCHS)
@pytest.mark.parametrize('variant', VARIANTS)
def test_shapes_and_variants(arch, variant):
    torch.manual_seed(0)
    net = MNISTConvNet(arch, **VARIANTS[variant])
    width, params = ARCHS[arch]
    out = net(torch.rand(3, 1, 28, 28))
    assert isinstance(out, tuple) and len(out) == 1
    assert out[0].shape == (3, width) and net.out_channels == width
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    if variant == 'none':
        assert sum(p.numel() for p in net.parameters()) + width * 10 + 10 == params
        assert not norms and all(type(c) is nn.Conv2d for c in convs)
    elif variant == 'BN':
        assert len(norms) == len(convs) and all(c.bias is None for c in convs)
    else:
        assert not norms and all(isinstance(c, ScaledWSConv2d) for c in convs)
        # gain 1 on pixels, ReLU's gain after every ReLU
        assert [c.gamma for c in convs] == [1.0] + [RELU_GAMMA] * (len(convs) - 1)
        w = convs[1].standardized_weight().flatten(1)
        torch.testing.assert_close(w.mean(1), torch.zeros(len(w)), atol=1e-6, rtol=0)
    # gradients reach the input (an attack target)
    x = torch.rand(2, 1, 28, 28, requires_grad=True)
    net.eval()
    (grad,) = torch.autograd.grad(net(x)[0].sum(), x)
    assert grad.abs().sum() > 0


def test_nf_convs_keep_the_signal_scale():
    """Scaled WS: each conv's output variance stays of the order of its input's."""
    torch.manual_seed(0)
    net = MNISTConvNet('smallcnn', conv_cfg=dict(type='ScaledWSConv'))
    x = torch.randn(64, 1, 28, 28)
    variances = []
    for layer in net.features:
        x = layer(x)
        if isinstance(layer, ScaledWSConv2d):
            variances.append(float(x.var()))
    # (PyTorch's default init without WS: 0.35, 0.055, 0.022, 0.005 here)
    assert all(0.3 < v < 3 for v in variances), variances


def test_smallcnn_dropout_and_registry():
    init_default_scope('mmpretrain')
    net = MODELS.build(dict(type='MNISTConvNet', arch='smallcnn'))
    assert [m.p for m in net.modules() if isinstance(m, nn.Dropout)] == [0.5]
    assert not any(isinstance(m, nn.Dropout) for m in MNISTConvNet('fast-at').modules())
    assert not any(
        isinstance(m, nn.Dropout) for m in MNISTConvNet('smallcnn', drop_rate=0.0).modules()
    )


def test_bad_settings_fail_clearly():
    with pytest.raises(
        ValueError,
        match=r"arch must be one of \['fast-at', 'madry', "
        r"'smallcnn'\], got 'lenet'",
    ):
        MNISTConvNet('lenet')
    with pytest.raises(ValueError, match='normalizer-free variant; norm_cfg must be None'):
        MNISTConvNet(conv_cfg=dict(type='ScaledWSConv'), norm_cfg=dict(type='BN'))
    with pytest.raises(ValueError, match=r'drop_rate must be in \[0, 1\)'):
        MNISTConvNet(drop_rate=1.0)
    with pytest.raises(ValueError, match='inputs must be 28x28, got'):
        MNISTConvNet()(torch.rand(1, 1, 32, 32))
