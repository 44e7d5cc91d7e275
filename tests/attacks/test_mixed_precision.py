"""PrecisionSafeClassifier: fp32 logits, per-sample gradient scaling under autocast, fp32 decisions."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from nofrost_mm.attacks import (
    NFGSM,
    GradScaledClassifier,
    NormalizedClassifier,
    PGDAttack,
    PrecisionSafeClassifier,
    fp32_logits,
    fp32_predict,
    precision_name,
    precision_safe,
)
from nofrost_mm.attacks.mixed_precision import LOGIT_GRAD_EXP, OVERFLOW_BACKOFF, autocast_dtype
from tests.attacks.toy import clean_preprocess, digits_batch, trained_classifier


@pytest.fixture(scope='module')
def setup():
    model = trained_classifier('bn', type='ImageClassifier')
    data = clean_preprocess(model, digits_batch(32, split='test'), training=False)
    labels = torch.cat([s.gt_label for s in data['data_samples']])
    return NormalizedClassifier(model, [0.0] * 3, [255.0] * 3), data['inputs'], labels


class _Sharp(nn.Module):
    """The model's logits times ``t``: as confident as a well-trained net."""

    def __init__(self, net, t):
        super().__init__()
        self.net, self.t = net, t

    def forward(self, x):
        return self.net(x) * self.t


def _loss(net, x, y):
    with torch.no_grad():
        return F.cross_entropy(net(x), y).item()


def _input_grad(fn, x, y, dtype=None):
    x = x.clone().requires_grad_(True)
    with torch.autocast('cpu', dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        loss = F.cross_entropy(fn(x).float(), y, reduction='sum')
    return torch.autograd.grad(loss, x)[0]


@pytest.mark.parametrize('attack,bound', [(PGDAttack(eps=8, steps=5), 8), (NFGSM(eps=8), 24)])
def test_bf16_autocast_attack_stays_in_bounds_and_is_as_strong(setup, attack, bound):
    net, x, y = setup
    clean = _loss(net, x, y)
    torch.manual_seed(0)
    fp32 = attack(net, x, y)
    torch.manual_seed(0)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert autocast_dtype('cpu') == torch.bfloat16
        assert precision_name('cpu') == 'bf16'
        bf16 = attack(net, x, y)
    assert autocast_dtype('cpu') is None and precision_name('cpu') == 'fp32'
    assert bf16.dtype == torch.float32 and bf16.min() >= 0 and bf16.max() <= 1
    assert (bf16 - x).abs().max() * 255 <= bound + 1e-3
    gain32, gain16 = _loss(net, fp32, y) - clean, _loss(net, bf16, y) - clean
    assert gain32 > 0.5 and abs(gain16 - gain32) < 0.15 * gain32, (gain16, gain32)


def test_without_autocast_it_is_an_exact_pass_through(setup):
    net, x, y = setup
    safe = PrecisionSafeClassifier(net)
    assert precision_safe(safe) is safe and PrecisionSafeClassifier(safe).model_fn is net
    with torch.no_grad():
        assert torch.equal(safe(x), net(x))
    assert torch.equal(_input_grad(net, x, y), _input_grad(safe, x, y))
    assert safe.overflows.count == 0


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_logits_are_fp32_and_the_scaled_gradient_is_the_gradient(setup, dtype):
    net, x, y = setup
    safe = PrecisionSafeClassifier(net)
    with torch.autocast('cpu', dtype=dtype):
        assert net(x).dtype == dtype and safe(x).dtype == torch.float32
    # on a model that does not underflow, the same gradient as without
    # scaling up to the rounding of the network's precision
    plain, scaled = _input_grad(net, x, y, dtype), _input_grad(safe, x, y, dtype)
    exact = _input_grad(net, x, y)
    agree = (scaled.sign() == exact.sign()).float().mean()
    cos = F.cosine_similarity(scaled.flatten(1), exact.flatten(1)).min()
    cos_plain = F.cosine_similarity(plain.flatten(1), scaled.flatten(1)).min()
    assert agree > 0.9 and cos > 0.95 and cos_plain > 0.999, (agree, cos, cos_plain)


def test_fp16_underflow_of_a_confident_model_is_removed(setup):
    """At logits x10 most fp16 input-gradient entries are 0; the per-sample
    scale before the cast brings them back (a scale applied after the cast,
    the former GradScaledClassifier's 2**8, did not)."""
    net, x, y = setup
    sharp = _Sharp(net, 10.0)
    exact = _input_grad(sharp, x, y)
    naive = _input_grad(sharp, x, y, torch.float16)
    safe = _input_grad(PrecisionSafeClassifier(sharp), x, y, torch.float16)
    zero32 = (exact == 0).float().mean()
    assert (naive == 0).float().mean() > zero32 + 0.2  # the test can fail
    assert (safe == 0).float().mean() <= zero32 + 0.01
    assert (safe.sign() == exact.sign()).float().mean() > 0.97


def test_one_power_of_two_per_sample_is_exact():
    """Rows of very different gradient sizes each land at 2**LOGIT_GRAD_EXP
    before the cast; the input gradient is divided back exactly."""
    seen = []

    def probe(x):  # records the (fp16) logit gradient that enters the 'network'
        out = x.flatten(1)[:, :3].half() * torch.tensor([1.0, 2.0, 3.0], dtype=torch.half)
        out.register_hook(seen.append)
        return out

    x = torch.rand(3, 1, 2, 2, requires_grad=True)
    weights = torch.tensor([[1e-9, 0, 0], [0, 3e-3, 0], [0, 0, 5.0]])
    with torch.autocast('cpu', dtype=torch.float16):
        out = PrecisionSafeClassifier(probe)(x)
    (grad,) = torch.autograd.grad((out * weights).sum(), x)
    peaks = seen[0].float().abs().amax(1)
    assert ((peaks >= 2.0**LOGIT_GRAD_EXP) & (peaks < 2.0 ** (LOGIT_GRAD_EXP + 1))).all()
    expected = torch.zeros(3, 4)
    expected[0, 0], expected[1, 1], expected[2, 2] = 1e-9, 6e-3, 15.0
    assert torch.allclose(grad.flatten(1), expected, rtol=2e-3)


def test_an_overflow_is_counted_backed_off_and_never_a_nan():
    def huge(x):  # amplifies the gradient beyond fp16's range for row 0 only
        gain = torch.tensor([6e4, 1.0], dtype=torch.half)[:, None]
        return (x.flatten(1)[:, :2].half() * gain) * gain

    safe = PrecisionSafeClassifier(huge)
    x = torch.rand(2, 1, 2, 2, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.float16):
        (grad,) = torch.autograd.grad(safe(x).sum(), x)
    assert torch.isfinite(grad).all()
    assert (grad[0] == 0).all() and (grad[1].flatten()[:2] == 1).all()
    assert safe.overflows.count == 1
    assert float(safe.overflows.exp) == LOGIT_GRAD_EXP - OVERFLOW_BACKOFF
    safe.overflows.reset()
    assert safe.overflows.count == 0


def test_train_mode_batch_norm_gets_one_scale_for_the_batch():
    """Rows interact through batch statistics: per-row scales would change
    the gradient, one shared power of two does not."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(144, 3)
    ).train()
    x = torch.rand(4, 1, 8, 8)
    w = torch.tensor([1e-3, 1.0, 1e2, 1e-1])[:, None]
    grads = []
    for fn in (net, PrecisionSafeClassifier(net)):
        xx = x.clone().requires_grad_(True)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = fn(xx).float()
        grads.append(torch.autograd.grad((out * w).sum(), xx)[0])
    assert torch.allclose(grads[0], grads[1], rtol=0, atol=1e-6 * grads[0].abs().max())


def test_decisions_are_fp32_under_autocast(setup):
    net, x, y = setup
    with torch.autocast('cpu', dtype=torch.bfloat16):
        logits = fp32_logits(net, x)
        pred = fp32_predict(net, x)
    with torch.no_grad():
        assert torch.equal(logits, net(x)) and torch.equal(pred, net(x).argmax(1))
    assert not logits.requires_grad


def test_deprecated_name_is_the_same_class(setup):
    net, x, y = setup
    assert isinstance(GradScaledClassifier(net), PrecisionSafeClassifier)


def test_preprocessor_attack_under_fp16_autocast_scales_its_gradients(monkeypatch):
    model = trained_classifier(
        'bn',
        data_preprocessor=dict(
            type='PGDDataPreprocessor',
            mean=[0.0] * 3,
            std=[255.0] * 3,
            num_classes=10,
            eps=8,
            attack=dict(type='PGDAttack', steps=2),
        ),
    )
    pre = model.data_preprocessor
    calls = []
    forward = PrecisionSafeClassifier.forward
    monkeypatch.setattr(
        PrecisionSafeClassifier,
        'forward',
        lambda self, x: calls.append(x.dtype) or forward(self, x),
    )
    data = clean_preprocess(model, digits_batch(8, split='test'), training=False)
    labels = torch.cat([s.gt_label for s in data['data_samples']])
    pre.attack_inputs(model, data['inputs'], labels)
    fp32_calls = len(calls)
    with torch.autocast('cpu', dtype=torch.float16):  # as AmpOptimWrapper's context
        adv = pre.attack_inputs(model, data['inputs'], labels)
    assert len(calls) - fp32_calls >= 2 and adv.dtype == torch.float32
    assert (adv - data['inputs']).abs().max() * 255 <= 8 + 1e-3


def test_input_gradients_of_second_order():
    """A second backward pass through the input gradient's graph
    (GradAlign's) gives the gradients without the wrapper, to the input and
    to the parameters: the first pass's scale is not applied twice."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Softplus(), nn.Flatten(), nn.Linear(64, 10))
    x = torch.rand(4, 3, 6, 6, requires_grad=True)
    y = torch.randint(0, 10, (4,))
    second = []
    for fn in (net, PrecisionSafeClassifier(net)):
        with torch.autocast('cpu', dtype=torch.bfloat16):
            (g,) = torch.autograd.grad(F.cross_entropy(fn(x).float(), y), x, create_graph=True)
            second.append(torch.autograd.grad(g.pow(2).sum(), [x, net[0].weight]))
    for plain, safe in zip(*second):
        assert torch.allclose(plain, safe, rtol=1e-5, atol=1e-6 * plain.abs().max())
