"""DualBatchNorm: routing, state-dict layout, plain BN checkpoints, round trip."""

import pytest
import torch
import torch.nn as nn
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint, save_checkpoint
from mmpretrain.registry import MODELS

import nofrost_mm  # noqa: F401
from nofrost_mm.models.layers import DualBatchNorm, dual_bn_route

C = 4


def _bn_pair(seed=0):
    """A DualBatchNorm with distinct branches and plain BNs holding each."""
    torch.manual_seed(seed)
    dual = DualBatchNorm(C)
    with torch.no_grad():
        for name in ('weight', 'bias', 'running_mean'):
            getattr(dual, name).normal_()
        dual.running_var.uniform_(0.5, 2.0)
    plain = {}
    for branch in ('clean', 'adv'):
        bn = nn.BatchNorm2d(C)
        bn.load_state_dict({k: v.clone() for k, v in dual.branch_state(branch).items()})
        plain[branch] = bn
    return dual, plain


@pytest.mark.parametrize('training', [False, True])
def test_each_route_computes_its_branch_as_a_plain_batch_norm(training):
    dual, plain = _bn_pair()
    x = torch.randn(6, C, 3, 3)
    dual.train(training)
    for branch in ('clean', 'adv'):
        plain[branch].train(training)
        with dual_bn_route(dual, branch):
            out = dual(x)
        torch.testing.assert_close(out, plain[branch](x), rtol=0, atol=1e-6)
    if training:  # each pass moved its own branch's statistics only
        for branch in ('clean', 'adv'):
            for name, value in dual.branch_state(branch).items():
                torch.testing.assert_close(
                    value, plain[branch].state_dict()[name], rtol=0, atol=1e-6
                )
        assert dual.num_batches_tracked.tolist() == [1, 1]
    # the branches differ: a test that passes the wrong branch would fail
    with dual_bn_route(dual, 'clean'):
        clean = dual(x)
    with dual_bn_route(dual, 'adv'):
        assert not torch.allclose(clean, dual(x))


def test_a_pass_moves_only_its_branch_and_trains_only_its_parameters():
    dual, _ = _bn_pair()
    before = {k: v.clone() for k, v in dual.state_dict().items()}
    x = torch.randn(8, C, 2, 2)
    with dual_bn_route(dual, 'adv'):
        dual(x).square().sum().backward()
    assert torch.equal(dual.running_mean[:C], before['running_mean'][:C])
    assert not torch.equal(dual.running_mean[C:], before['running_mean'][C:])
    assert dual.num_batches_tracked.tolist() == [0, 1]
    assert torch.count_nonzero(dual.weight.grad[:C]) == 0
    assert torch.count_nonzero(dual.weight.grad[C:]) == C


def test_split_route_is_the_two_branches_on_their_rows():
    dual, plain = _bn_pair()
    x = torch.randn(10, C, 2, 2)
    with dual_bn_route(dual, 4):
        out = dual(x)
    torch.testing.assert_close(out[:4], plain['clean'](x[:4]), rtol=0, atol=1e-6)
    torch.testing.assert_close(out[4:], plain['adv'](x[4:]), rtol=0, atol=1e-6)
    assert dual.num_batches_tracked.tolist() == [1, 1]


def test_outside_a_route_it_uses_deploy_branch_and_routes_nest():
    dual, plain = _bn_pair()
    dual.eval()
    x = torch.randn(3, C, 2, 2)
    dual.deploy_branch = 'adv'
    torch.testing.assert_close(dual(x), plain['adv'].eval()(x))
    with dual_bn_route(dual, 'clean'):
        with dual_bn_route(dual, 'adv'):
            assert dual.route == 'adv'
        assert dual.route == 'clean'
        with pytest.raises(RuntimeError):
            with dual_bn_route(dual, 'adv'):
                raise RuntimeError('body failed')
        assert dual.route == 'clean'  # restored on an exception too
    assert dual.route is None


def test_bad_branch_names_fail_with_the_allowed_values():
    with pytest.raises(ValueError, match=r"deploy_branch.*\('clean', 'adv'\).*'robust'"):
        DualBatchNorm(C, deploy_branch='robust')
    with pytest.raises(ValueError, match=r"route must be one of \('clean', 'adv'\)"):
        with dual_bn_route(nn.Sequential(DualBatchNorm(C)), 'adversarial'):
            pass


def _resnet(norm):
    init_default_scope('mmpretrain')
    return MODELS.build(
        dict(
            type='ResNet_CIFAR',
            depth=18,
            stem_channels=8,
            base_channels=8,
            norm_cfg=dict(type=norm),
        )
    )


def test_state_dict_has_the_bn_names_with_both_branches_clean_first():
    bn_model, dual_model = _resnet('BN'), _resnet('DualBN')
    bn_sd, dual_sd = bn_model.state_dict(), dual_model.state_dict()
    assert list(bn_sd) == list(dual_sd)  # same names, same order
    layer = dual_model.layer1[0].bn1
    assert isinstance(layer, DualBatchNorm) and layer.num_features == 8
    for key, value in bn_sd.items():
        if key.endswith('num_batches_tracked'):
            assert dual_sd[key].shape == (2,)
        elif value.dim() == 1:  # BN weight, bias, running mean / var
            assert dual_sd[key].shape == (2 * value.numel(),), key
        else:
            assert dual_sd[key].shape == value.shape, key
    # the halves are the branches
    with torch.no_grad():
        layer.weight[8:] = 5.0
    assert torch.equal(layer.branch_state('adv')['weight'], torch.full((8,), 5.0))
    assert torch.equal(layer.branch_state('clean')['weight'], torch.ones(8))


def test_a_plain_bn_checkpoint_loads_into_both_branches(tmp_path):
    torch.manual_seed(0)
    bn_model, dual_model = _resnet('BN'), _resnet('DualBN')
    bn_model.train()
    for _ in range(3):  # running statistics and batch counts of their own
        bn_model(torch.randn(8, 3, 16, 16))
    with torch.no_grad():
        for p in bn_model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    save_checkpoint({'state_dict': bn_model.state_dict()}, str(tmp_path / 'bn.pth'))
    load_checkpoint(dual_model, str(tmp_path / 'bn.pth'), strict=True)
    x = torch.randn(4, 3, 16, 16)
    bn_model.eval(), dual_model.eval()
    expected = bn_model(x)[0]
    for branch in ('clean', 'adv'):
        with dual_bn_route(dual_model, branch):
            torch.testing.assert_close(dual_model(x)[0], expected, rtol=0, atol=1e-5)
    assert dual_model.bn1.num_batches_tracked.tolist() == [3, 3]


def test_checkpoint_round_trip_keeps_both_branches(tmp_path):
    torch.manual_seed(0)
    model = _resnet('DualBN')
    model.train()
    for route in ('clean', 'adv', 'adv'):  # branches with different states
        with dual_bn_route(model, route):
            model(torch.randn(8, 3, 16, 16))
    with torch.no_grad():
        model.bn1.weight[8:] += 1.0
    save_checkpoint({'state_dict': model.state_dict()}, str(tmp_path / 'dual.pth'))
    again = _resnet('DualBN')
    load_checkpoint(again, str(tmp_path / 'dual.pth'), strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    assert again.bn1.num_batches_tracked.tolist() == [1, 2]
    model.eval(), again.eval()
    x = torch.randn(2, 3, 16, 16)
    for branch in ('clean', 'adv'):
        with dual_bn_route(model, branch), dual_bn_route(again, branch):
            assert torch.equal(model(x)[0], again(x)[0])


def test_norm_cfg_builds_it_with_and_without_a_scope():
    from mmcv.cnn import build_norm_layer
    from mmengine.registry import DefaultScope

    for cfg in (
        dict(type='DualBN', deploy_branch='adv'),
        dict(type=DualBatchNorm, deploy_branch='adv'),
    ):
        # mmengine's root registry: the scope of a run without mmpretrain's
        with DefaultScope.overwrite_default_scope('mmengine'):
            name, layer = build_norm_layer(dict(cfg), 6, postfix=1)
        assert name == 'bn1' and isinstance(layer, DualBatchNorm)
        assert layer.weight.shape == (12,) and layer.deploy_branch == 'adv'
    init_default_scope('mmpretrain')
    assert isinstance(build_norm_layer(dict(type='DualBN'), 6)[1], DualBatchNorm)
