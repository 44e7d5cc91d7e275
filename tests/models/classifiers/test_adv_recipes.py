"""Training recipes beyond the mixed loss: pure AT, TRADES and AWP, each loss
term checked against a direct computation on a tiny model."""

import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper
from mmpretrain.registry import MODELS

from tests.attacks.toy import NF_BACKBONE, adversarial_batch, build_classifier, digits_batch

PRE = dict(
    type='PGDDataPreprocessor',
    mean=[0.0] * 3,
    std=[255.0] * 3,
    num_classes=10,
    eps=32,
    attack=dict(type='PGDAttack', steps=2),
)
TRADES_PRE = dict(PRE, attack=dict(type='PGDAttack', steps=2, loss='kl', random_start='normal'))
TRADES = dict(adv_loss='trades', trades_beta=6.0)


def _batch(model, n=16):
    return adversarial_batch(model, digits_batch(n))


def _labels(data):
    return torch.cat([s.gt_label for s in data['data_samples']])


def _trades_by_hand(model, data, beta=6.0):
    """CE(clean) + beta * KL(p_clean || p_adv), batch mean, two passes."""
    clean = model(data['inputs'], mode='tensor')
    adv = model(data['adv_inputs'], mode='tensor')
    kl = (clean.softmax(1) * (clean.log_softmax(1) - adv.log_softmax(1))).sum(1).mean()
    return F.cross_entropy(clean, _labels(data)) + beta * kl, kl


@pytest.mark.parametrize('backbone,forward', [(None, 'separate'), (NF_BACKBONE, 'concat')])
def test_trades_loss_is_ce_clean_plus_beta_kl(backbone, forward):
    model = build_classifier(
        **({} if backbone is None else dict(backbone=backbone)),
        data_preprocessor=TRADES_PRE,
        adv_forward=forward,
        **TRADES,
    )
    model.train()
    data = _batch(model)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_ce', 'loss_kl'}
    total, _ = model.parse_losses(losses)
    by_hand, kl = _trades_by_hand(model, data)
    assert torch.allclose(total, by_hand, atol=1e-5)
    assert torch.allclose(model.adv_log_vars['trades_kl'], kl, atol=1e-6)
    assert kl > 0
    # gradients flow through both predictions, as in TRADES's code
    total.backward()
    grad = model.head.fc.weight.grad.clone()
    model.zero_grad()
    by_hand.backward()
    assert torch.allclose(grad, model.head.fc.weight.grad, atol=1e-5)


def test_trades_settings_are_checked():
    with pytest.raises(ValueError, match="attack.loss must be 'kl'"):
        build_classifier(data_preprocessor=PRE, **TRADES)
    with pytest.raises(ValueError, match='model.adv_loss_weight must be None'):
        build_classifier(data_preprocessor=TRADES_PRE, adv_loss_weight=0.5, **TRADES)
    with pytest.raises(ValueError, match='model.trades_beta'):
        build_classifier(data_preprocessor=TRADES_PRE, adv_loss='trades', trades_beta=-1)
    with pytest.raises(ValueError, match="adv_loss must be one of \\('mix', 'trades'\\)"):
        build_classifier(data_preprocessor=PRE, adv_loss='mart')


def test_pure_at_runs_no_clean_forward_pass():
    model = build_classifier(data_preprocessor=PRE, adv_loss_weight=1.0)
    model.train()
    calls = []
    model.backbone.register_forward_hook(lambda *_: calls.append(1))
    data = _batch(model)
    assert len(calls) == 2  # the two attack steps
    losses = model(**data, mode='loss')
    assert len(calls) == 3  # one pass, over the adversarial batch only
    adv = F.cross_entropy(model(data['adv_inputs'], mode='tensor'), _labels(data))
    assert torch.allclose(losses['loss'], adv, atol=1e-5)
    assert set(model.adv_log_vars) == {'loss_adv', 'acc_adv'}


def _awp_by_hand(model, data, gamma):
    """Wu et al.'s AWP: v = gamma ||w|| g / ||g|| on a copy, loss there."""
    ref = copy.deepcopy(model)
    ref.awp_gamma = 0.0
    frozen = copy.deepcopy(ref)  # BN statistics as before the extra pass
    total, _ = ref.parse_losses(ref(**data, mode='loss'))
    names = [n for n, p in ref.named_parameters() if p.dim() > 1 and 'weight' in n]
    params = dict(ref.named_parameters())
    grads = torch.autograd.grad(total, [params[n] for n in names])
    with torch.no_grad():
        moved = dict(frozen.named_parameters())
        for name, g in zip(names, grads):
            moved[name].add_(gamma * params[name].norm() / (g.norm() + 1e-20) * g)
    total, _ = frozen.parse_losses(frozen(**data, mode='loss'))
    total.backward()
    return frozen, total


@pytest.mark.parametrize('recipe', ['mix', 'trades', 'pure'])
def test_awp_gradient_is_taken_at_perturbed_weights_and_weights_are_kept(recipe):
    pre, kwargs = dict(
        mix=(PRE, {}), trades=(TRADES_PRE, TRADES), pure=(PRE, dict(adv_loss_weight=1.0))
    )[recipe]
    model = build_classifier(data_preprocessor=pre, **kwargs)  # BN: running stats matter
    model.awp_gamma = 0.01
    model.train()
    data = _batch(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ref, ref_total = _awp_by_hand(model, data, 0.01)

    total, _ = model.parse_losses(model(**data, mode='loss'))
    total.backward()
    assert torch.allclose(total, ref_total, atol=1e-5)
    ref_params = dict(ref.named_parameters())
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name  # never moved
        assert torch.allclose(p.grad, ref_params[name].grad, atol=1e-5), name
    # BN statistics: updated once, by the pass at the perturbed weights
    for name, buf in model.named_buffers():
        assert torch.allclose(buf.float(), dict(ref.named_buffers())[name].float(), atol=1e-6), name
    # and the perturbation changes the gradient
    plain = copy.deepcopy(model)
    plain.awp_gamma = 0.0
    plain.zero_grad()
    plain.parse_losses(plain(**data, mode='loss'))[0].backward()
    assert not torch.allclose(plain.backbone.conv1.weight.grad, model.backbone.conv1.weight.grad)


def test_awp_optimizer_step_starts_from_the_unperturbed_weights():
    """One mmengine train_step: w_new = w - lr * grad(loss at w + v)."""
    model = build_classifier(NF_BACKBONE, data_preprocessor=PRE, adv_forward='concat')
    model.awp_gamma = 0.02
    model.train()
    data = digits_batch(16)
    prepared = adversarial_batch(model, copy.deepcopy(data))
    ref, _ = _awp_by_hand(model, prepared, 0.02)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    torch.manual_seed(0)
    model.train_step(copy.deepcopy(data), wrapper)
    for name, p in ref.named_parameters():
        expected = before[name] - 0.1 * p.grad
        assert torch.allclose(dict(model.named_parameters())[name], expected, atol=1e-6), name


def test_awp_off_is_the_plain_loss_and_bad_gamma_is_rejected():
    model = build_classifier(data_preprocessor=PRE)
    model.train()
    data = _batch(model)
    plain = model(**data, mode='loss')['loss']
    model.awp_gamma, model.awp_enabled = 0.01, False  # as during the hook's warm-up
    assert torch.allclose(model(**data, mode='loss')['loss'], plain)
    with pytest.raises(ValueError, match='model.awp_gamma'):
        MODELS.build(
            dict(
                type='AdvImageClassifier',
                awp_gamma=-1,
                backbone=NF_BACKBONE,
                head=dict(type='LinearClsHead', num_classes=10, in_channels=64),
            )
        )
