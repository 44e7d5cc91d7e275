"""PGDAttack(loss='kl'): the TRADES inner maximisation, against a direct loop."""

import pytest
import torch
import torch.nn.functional as F

from nofrost_mm.attacks import NormalizedClassifier, PGDAttack
from tests.attacks.toy import clean_preprocess, digits_batch, trained_classifier


@pytest.fixture(scope='module')
def setup():
    model = trained_classifier('bn', type='ImageClassifier')
    data = clean_preprocess(model, digits_batch(32, split='test'), training=False)
    labels = torch.cat([s.gt_label for s in data['data_samples']])
    return NormalizedClassifier(model, [0.0] * 3, [255.0] * 3), data['inputs'], labels


def _kl(net, x, adv):
    with torch.no_grad():
        return F.kl_div(net(adv).log_softmax(1), net(x).softmax(1), reduction='sum').item()


def test_kl_attack_is_the_trades_loop(setup):
    """Same start (x + 0.001 N(0, 1)), same KL ascent, same projections."""
    net, x, labels = setup
    eps, alpha, steps = 16 / 255, 4 / 255, 4
    torch.manual_seed(3)
    adv = PGDAttack(eps=16, steps=steps, step_size=4, loss='kl', random_start='normal')(
        net, x, labels
    )
    # TRADES's loop, written on the perturbation (a 1-ulp difference in the
    # input can flip the sign of a near-zero gradient, so the same arithmetic)
    torch.manual_seed(3)
    delta = (x + 0.001 * torch.randn_like(x)).clamp(0, 1) - x
    with torch.no_grad():
        p_clean = net(x).softmax(1)
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.kl_div(net(x + delta).log_softmax(1), p_clean, reduction='sum')
        (grad,) = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + alpha * grad.sign()).clamp(-eps, eps)
        delta = (x + delta).clamp(0, 1) - x
    assert torch.allclose(adv, (x + delta).clamp(0, 1), atol=1e-6)
    assert (adv - x).abs().max() * 255 <= 16 + 1e-3
    # it maximises the KL: far above the random start's
    start = (x + 0.001 * torch.randn_like(x)).clamp(0, 1)
    assert _kl(net, x, adv) > 10 * _kl(net, x, start)


def test_kl_attack_ignores_labels_and_keeps_l2_ball(setup):
    net, x, labels = setup
    torch.manual_seed(0)
    a = PGDAttack(eps=8, steps=2, loss='kl')(net, x, labels)
    torch.manual_seed(0)
    b = PGDAttack(eps=8, steps=2, loss='kl')(net, x, (labels + 1) % 10)
    assert torch.equal(a, b)
    adv = PGDAttack(eps=64, steps=3, norm='L2', loss='kl', random_start='normal')(net, x, labels)
    assert (adv - x).flatten(1).norm(dim=1).max() * 255 <= 64 + 1e-3


@pytest.mark.parametrize(
    'kwargs,key',
    [
        (dict(loss='kl', targeted=True), 'targeted'),
        (dict(random_start='gaussian'), 'random_start'),
        (dict(random_start=1), 'random_start'),
        (dict(loss='mse'), 'loss'),
    ],
)
def test_bad_kl_settings_name_the_key(kwargs, key):
    with pytest.raises((TypeError, ValueError), match=key):
        PGDAttack(**kwargs)
