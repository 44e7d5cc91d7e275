"""Scaled WS convs compute their standardized weight once inside attack_context."""
from unittest import mock

import torch

import nofrost_mm  # noqa: F401
from nofrost_mm.attacks import attack_context
from nofrost_mm.models.layers import ScaledWSConv2d
from mmpretrain.registry import MODELS


def _nf_net():
    torch.manual_seed(0)
    net = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='NFResNet_CIFAR', depth=18, stem_channels=8,
                      base_channels=8, out_indices=(3, ),
                      zero_init_last=False),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=64)))
    return net.eval()


def _logits_and_grad(net, x):
    x = x.clone().requires_grad_()
    out = net(x, mode='tensor')
    grad, = torch.autograd.grad(out.logsumexp(1).sum(), x)
    return out.detach(), grad


def test_cached_outputs_and_input_gradients_are_bitwise_equal():
    net, x = _nf_net(), torch.rand(4, 3, 16, 16)
    plain = _logits_and_grad(net, x)
    with attack_context(net):
        calls = mock.patch.object(ScaledWSConv2d, 'standardized_weight',
                                  autospec=True,
                                  side_effect=ScaledWSConv2d.standardized_weight)
        with calls as spy:
            first = _logits_and_grad(net, x)
            second = _logits_and_grad(net, x)
        num_convs = sum(isinstance(m, ScaledWSConv2d) for m in net.modules())
        # once per conv for both passes: the second one reused the cache
        assert spy.call_count == num_convs
    for a, b, c in zip(plain, first, second):
        assert torch.equal(a, b) and torch.equal(a, c)


def test_weights_changed_between_contexts_are_used():
    net, x = _nf_net(), torch.rand(4, 3, 16, 16)
    with attack_context(net):
        before = net(x, mode='tensor')
    assert all(not m._frozen_weights for m in net.modules()
               if isinstance(m, ScaledWSConv2d))
    # an in-place change through .data (EMAHook's swap) bumps no version
    # counter: only releasing the cache makes it visible
    for p in net.backbone.parameters():
        p.data.mul_(1.5)
    fresh = net(x, mode='tensor')
    with attack_context(net):
        after = net(x, mode='tensor')
    assert not torch.equal(before, after)
    assert torch.equal(after, fresh)


def test_nested_contexts_and_autocast_keep_separate_weights():
    net, x = _nf_net(), torch.rand(4, 3, 16, 16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        plain_bf16 = net(x, mode='tensor')
    with attack_context(net):
        with attack_context(net):
            inner = net(x, mode='tensor')
        conv = next(m for m in net.modules() if isinstance(m, ScaledWSConv2d))
        assert conv._frozen_weights  # the outer context still holds it
        with torch.autocast('cpu', dtype=torch.bfloat16):
            cached_bf16 = net(x, mode='tensor')
        assert len(conv._frozen_weights) == 2
    assert not conv._frozen_weights
    assert torch.equal(inner, net(x, mode='tensor'))
    assert torch.equal(cached_bf16, plain_bf16)


def test_training_outside_the_context_still_gets_weight_gradients():
    net, x = _nf_net(), torch.rand(4, 3, 16, 16)
    with attack_context(net):
        net(x, mode='tensor')
    net.train()
    net(x, mode='tensor').sum().backward()
    conv = next(m for m in net.modules() if isinstance(m, ScaledWSConv2d))
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
