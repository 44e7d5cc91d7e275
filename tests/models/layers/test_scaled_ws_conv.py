import pytest
import torch
from mmcv.cnn import build_conv_layer
from mmengine.registry import DefaultScope
from timm.layers import ScaledStdConv2d

import nofrost_mm  # noqa: F401
from nofrost_mm.models.layers import RELU_GAMMA, ScaledWSConv2d


@pytest.mark.parametrize(
    'kwargs',
    [
        dict(kernel_size=3, stride=1, gamma=1.0, eps=1e-6),
        dict(kernel_size=3, stride=2, gamma=RELU_GAMMA, eps=1e-5),
        dict(kernel_size=1, stride=1, gamma=RELU_GAMMA, eps=1e-5, groups=4),
        dict(kernel_size=7, stride=2, gamma=RELU_GAMMA, eps=1e-5, dilation=2),
    ],
)
def test_matches_timm_scaled_std_conv(kwargs):
    torch.manual_seed(0)
    ours = ScaledWSConv2d(8, 16, **kwargs)
    timm_conv = ScaledStdConv2d(8, 16, **kwargs)
    with torch.no_grad():
        ours.gain.uniform_(0.5, 1.5)
        ours.bias.normal_()
    timm_conv.load_state_dict(ours.state_dict())  # same parameter names
    x = torch.randn(2, 8, 15, 15)
    assert torch.equal(ours(x), timm_conv(x))


def test_standardized_weight_statistics():
    conv = ScaledWSConv2d(4, 6, 3, gamma=2.0, eps=1e-10)
    w = conv.standardized_weight().flatten(1)
    fan_in = 4 * 9
    assert torch.allclose(w.mean(1), torch.zeros(6), atol=1e-6)
    # biased variance of gamma / sqrt(fan_in) * standardized weights
    assert torch.allclose(w.var(1, unbiased=False), torch.full((6,), 4.0 / fan_in), rtol=1e-4)


def test_output_independent_of_weight_scale_and_input_mean():
    conv = ScaledWSConv2d(16, 6, 1, bias=False, eps=1e-10)
    x = torch.randn(2, 16, 5, 5)
    y = conv(x)
    with torch.no_grad():
        conv.weight.mul_(7.0)
    assert torch.allclose(conv(x), y, atol=1e-5)
    # zero-mean weights cancel a constant shift of the input (1x1 conv)
    assert torch.allclose(conv(x + 3.0), y, atol=1e-4)


def test_zero_gain_init_gives_bias_only():
    conv = ScaledWSConv2d(4, 6, 3, gain_init=0.0)
    conv.reset_parameters()  # keeps the configured init
    assert torch.count_nonzero(conv.gain) == 0
    out = conv(torch.randn(1, 4, 5, 5))
    assert torch.equal(out, conv.bias.view(1, 6, 1, 1).expand_as(out))


@pytest.mark.parametrize('scope', [None, 'mmpretrain'])
def test_build_conv_layer_with_and_without_scope(scope):
    cfg = dict(type='ScaledWSConv', gamma=RELU_GAMMA)
    if scope is None:
        conv = build_conv_layer(cfg, 3, 8, 3, stride=2, padding=1)
    else:
        with DefaultScope.overwrite_default_scope(scope):
            conv = build_conv_layer(cfg, 3, 8, 3, stride=2, padding=1)
    assert isinstance(conv, ScaledWSConv2d) and conv.gamma == RELU_GAMMA
    assert conv(torch.randn(1, 3, 8, 8)).shape == (1, 8, 4, 4)
    # a class as type works too
    conv = build_conv_layer(dict(type=ScaledWSConv2d), 3, 8, 1)
    assert isinstance(conv, ScaledWSConv2d)


def test_in_an_mm_backbone_via_conv_cfg():
    from mmpretrain.models import ResNet_CIFAR

    model = ResNet_CIFAR(
        depth=18, stem_channels=8, base_channels=8, conv_cfg=dict(type='ScaledWSConv')
    )
    assert isinstance(model.layer1[0].conv1, ScaledWSConv2d)
    assert model(torch.randn(2, 3, 16, 16))[0].shape == (2, 64, 2, 2)


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match='padding=None'):
        ScaledWSConv2d(3, 4, (3, 1))
    with pytest.raises(ValueError, match='eps=0'):
        ScaledWSConv2d(3, 4, 3, eps=0)
