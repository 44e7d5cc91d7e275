"""Attack steps under autocast (bf16 on CPU) and the fp16 gradient scaling."""
import pytest
import torch
import torch.nn.functional as F

from nofrost_mm.attacks import NFGSM, NormalizedClassifier, PGDAttack
from nofrost_mm.attacks.mixed_precision import GradScaledClassifier, autocast_dtype
from tests.attacks.toy import clean_preprocess, digits_batch, trained_classifier


@pytest.fixture(scope='module')
def setup():
    model = trained_classifier('bn', type='ImageClassifier')
    data = clean_preprocess(model, digits_batch(32, split='test'), training=False)
    labels = torch.cat([s.gt_label for s in data['data_samples']])
    return NormalizedClassifier(model, [0.] * 3, [255.] * 3), data['inputs'], labels


def _loss(net, x, y):
    with torch.no_grad():
        return F.cross_entropy(net(x), y).item()


@pytest.mark.parametrize('attack,bound', [(PGDAttack(eps=8, steps=5), 8),
                                          (NFGSM(eps=8), 24)])
def test_bf16_autocast_attack_stays_in_bounds_and_is_as_strong(setup, attack, bound):
    net, x, y = setup
    clean = _loss(net, x, y)
    torch.manual_seed(0)
    fp32 = attack(net, x, y)
    torch.manual_seed(0)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert autocast_dtype('cpu') == torch.bfloat16
        bf16 = attack(net, x, y)
    assert autocast_dtype('cpu') is None
    assert bf16.dtype == torch.float32 and bf16.min() >= 0 and bf16.max() <= 1
    assert (bf16 - x).abs().max() * 255 <= bound + 1e-3
    gain32, gain16 = _loss(net, fp32, y) - clean, _loss(net, bf16, y) - clean
    assert gain32 > 0.5 and abs(gain16 - gain32) < 0.15 * gain32, (gain16, gain32)


def test_scaled_gradient_is_the_same_gradient(setup):
    net, x, y = setup
    grads = []
    for fn in (net, GradScaledClassifier(net)):
        xx = x.clone().requires_grad_(True)
        loss = F.cross_entropy(fn(xx), y, reduction='sum')
        grads.append(torch.autograd.grad(loss, xx)[0])
    assert torch.equal(grads[0], grads[1])  # a power of two: exact in fp32


def test_fp16_scaling_keeps_small_gradients_and_zeroes_overflows():
    def tiny(x):  # an fp16 network whose input gradient (1e-8) flushes to 0 in fp16
        return (x.flatten(1).half() * 1e-4).sum(1, keepdim=True).float() * 1e-4

    grads = []
    for fn in (tiny, GradScaledClassifier(tiny)):
        x = torch.rand(2, 1, 2, 2, requires_grad=True)
        grads.append(torch.autograd.grad(fn(x).sum(), x)[0])
    assert (grads[0] == 0).all()
    assert torch.allclose(grads[1], torch.full_like(grads[1], 1e-8), rtol=0.05)

    def huge(x):  # the scaled gradient overflows
        return x.flatten(1)[:, :2] * 1e37

    x = torch.rand(2, 1, 2, 2, requires_grad=True)
    grad = torch.autograd.grad(GradScaledClassifier(huge)(x).sum(), x)[0]
    assert torch.isfinite(grad).all() and (grad == 0).all()
    with pytest.raises(ValueError, match='`scale`'):
        GradScaledClassifier(huge, scale=0)


def test_preprocessor_attack_under_fp16_autocast_scales_its_gradients(monkeypatch):
    model = trained_classifier('bn', data_preprocessor=dict(
        type='PGDDataPreprocessor', mean=[0.] * 3, std=[255.] * 3, num_classes=10,
        attack=dict(type='PGDAttack', eps=8, steps=2)))
    pre = model.data_preprocessor
    calls = []
    forward = GradScaledClassifier.forward
    monkeypatch.setattr(GradScaledClassifier, 'forward',
                        lambda self, x: calls.append(x.dtype) or forward(self, x))
    data = clean_preprocess(model, digits_batch(8, split='test'), training=False)
    labels = torch.cat([s.gt_label for s in data['data_samples']])
    pre.attack_inputs(model, data['inputs'], labels)
    assert not calls  # fp32: no scaling
    with torch.autocast('cpu', dtype=torch.float16):  # as AmpOptimWrapper's context
        adv = pre.attack_inputs(model, data['inputs'], labels)
    assert len(calls) == 2 and adv.dtype == torch.float32
    assert (adv - data['inputs']).abs().max() * 255 <= 8 + 1e-3
