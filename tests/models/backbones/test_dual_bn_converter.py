"""DualBNConverter / convert_dual_bn: any BN model, its names, and clear refusals."""

import pytest
import torch
import torch.nn as nn
from mmengine.registry import init_default_scope
from mmpretrain.models.backbones import ResNet_CIFAR
from mmpretrain.registry import MODELS

import nofrost_mm  # noqa: F401
from nofrost_mm.models.backbones import convert_dual_bn
from nofrost_mm.models.layers import DualBatchNorm, dual_bn_route

RESNET = dict(type='ResNet_CIFAR', depth=18, stem_channels=8, base_channels=8)


@pytest.fixture(autouse=True)
def scope():
    init_default_scope('mmpretrain')


def test_converter_returns_the_model_itself_with_every_bn_split():
    torch.manual_seed(0)
    plain = MODELS.build(RESNET)
    model = MODELS.build(dict(type='DualBNConverter', module=RESNET, deploy_branch='adv'))
    assert type(model) is ResNet_CIFAR  # necks and tools see a ResNet
    assert list(model.state_dict()) == list(plain.state_dict())
    bns = [m for m in plain.modules() if isinstance(m, nn.BatchNorm2d)]
    duals = [m for m in model.modules() if isinstance(m, DualBatchNorm)]
    assert len(duals) == len(bns) > 0
    assert not any(type(m) is nn.BatchNorm2d for m in model.modules())
    assert {m.deploy_branch for m in duals} == {'adv'}


def test_init_weights_sets_both_branches_alike():
    """ResNet's zero-initialised last BN of each block: both branches."""
    model = MODELS.build(dict(type='DualBNConverter', module=dict(RESNET, zero_init_residual=True)))
    model.init_weights()
    last = model.layer1[0].bn2
    assert torch.equal(last.weight, torch.zeros(16))
    assert torch.equal(model.layer1[0].bn1.weight, torch.ones(16))


def test_converted_branches_start_as_the_bn_and_keep_its_settings():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4, eps=1e-3, momentum=0.3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(36, 8),
        nn.BatchNorm1d(8, affine=False),
    )
    net.train()
    net(torch.randn(5, 3, 5, 5))
    net[1].weight.requires_grad_(False)  # a frozen BN stays frozen
    net.eval()
    x = torch.randn(2, 3, 5, 5)
    expected = net(x)
    bn = net[1]
    convert_dual_bn(net)
    dual = net[1]
    assert isinstance(dual, DualBatchNorm) and isinstance(net[5], DualBatchNorm)
    assert (dual.eps, dual.momentum, dual.weight.requires_grad) == (1e-3, 0.3, False)
    assert not dual.training and net[5].weight is None
    for branch in ('clean', 'adv'):
        for name, value in dual.branch_state(branch).items():
            assert torch.equal(value, bn.state_dict()[name]), name
        with dual_bn_route(net, branch):
            torch.testing.assert_close(net(x), expected, rtol=0, atol=1e-6)


def test_a_model_without_batch_norm_is_refused_with_what_it_has():
    with pytest.raises(
        TypeError,
        match=r'LeNet5 has no BatchNorm.*no normalization '
        r'layer.*BatchNorm1d/2d/3d and SyncBatchNorm',
    ):
        MODELS.build(dict(type='DualBNConverter', module=dict(type='LeNet5')))
    gn = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Sequential(nn.GroupNorm(2, 8)))
    with pytest.raises(TypeError, match=r'normalizes with GroupNorm at "1.0"'):
        convert_dual_bn(gn)
    with pytest.raises(TypeError, match=r'InstanceNorm2d'):
        convert_dual_bn(nn.Sequential(nn.InstanceNorm2d(3)))


def test_bad_arguments_fail_before_building():
    with pytest.raises(ValueError, match=r"deploy_branch must be one of \('clean', 'adv'\)"):
        MODELS.build(dict(type='DualBNConverter', module=RESNET, deploy_branch='both'))
    with pytest.raises(TypeError, match="module must be a config dict with a 'type'"):
        MODELS.build(dict(type='DualBNConverter', module=dict(depth=18)))
