"""FGSMRS and NFGSM: the exact step maths, bounds, registration, training use."""

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper

from nofrost_mm.attacks import FGSMRS, NFGSM, NormalizedClassifier, PGDAttack, build_attack
from nofrost_mm.engine.hooks import AdversarialTrainingHook
from tests.attacks.toy import build_classifier, clean_preprocess, digits_batch, trained_classifier


@pytest.fixture(scope='module')
def setup():
    model = trained_classifier('bn', type='ImageClassifier')
    data = clean_preprocess(model, digits_batch(32, split='test'), training=False)
    labels = torch.cat([s.gt_label for s in data['data_samples']])
    return NormalizedClassifier(model, [0.0] * 3, [255.0] * 3), data['inputs'], labels


def _grad(net, x, y):
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(net(x).float(), y, reduction='sum')
    return torch.autograd.grad(loss, x)[0]


def test_fgsmrs_is_one_projected_step_of_1_25_eps_from_a_uniform_start(setup):
    net, x, y = setup
    eps = 16 / 255
    torch.manual_seed(0)
    adv = FGSMRS(eps=16)(net, x, y)
    torch.manual_seed(0)  # replay: start in the ball and the image range
    delta = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1) - x
    delta = (delta + 1.25 * eps * _grad(net, x + delta, y).sign()).clamp(-eps, eps)
    expected = (x + delta).clamp(0, 1)
    assert torch.allclose(adv, expected, atol=1e-6)
    dist = (adv - x).abs().amax(dim=(1, 2, 3)) * 255
    assert dist.max() <= 16 + 1e-3 and dist.min() > 8
    assert adv.min() >= 0 and adv.max() <= 1


def test_fgsmrs_unclipped_start_takes_the_gradient_outside_the_image_range(setup):
    """fast_adversarial's MNIST FGSM: the start is not clipped, the result is."""
    net, x, y = setup
    eps = 16 / 255
    seen = []

    def spy(images):
        seen.append(images.detach().clone())
        return net(images)

    torch.manual_seed(0)
    adv = FGSMRS(eps=16, clip_start=False)(spy, x, y)
    torch.manual_seed(0)
    delta = torch.empty_like(x).uniform_(-eps, eps)
    assert torch.equal(seen[0], x + delta)
    assert seen[0].min() < 0  # the digits' black background, pushed below 0
    delta = (delta + 1.25 * eps * _grad(net, x + delta, y).sign()).clamp(-eps, eps)
    assert torch.allclose(adv, (x + delta).clamp(0, 1), atol=1e-6)
    assert adv.min() >= 0 and adv.max() <= 1
    dist = (adv - x).abs().amax(dim=(1, 2, 3)) * 255
    assert dist.max() <= 16 + 1e-3
    seen.clear()
    FGSMRS(eps=16)(spy, x, y)
    assert seen[0].min() >= 0  # the default clips the start
    with pytest.raises(TypeError, match='FGSMRS.clip_start must be True or False'):
        FGSMRS(clip_start='no')


def test_fgsmrs_without_random_start_is_fgsm(setup):
    net, x, y = setup
    adv = FGSMRS(eps=8, random_start=False, step_ratio=1.0)(net, x, y)
    expected = (x + 8 / 255 * _grad(net, x, y).sign()).clamp(0, 1)
    assert torch.allclose(adv, expected, atol=1e-6)
    fgsm = PGDAttack(eps=8, steps=1, random_start=False, step_size=8)(net, x, y)
    assert torch.allclose(adv, fgsm, atol=1e-6)


def test_nfgsm_is_noise_of_k_eps_plus_one_unprojected_step(setup):
    net, x, y = setup
    eps = 16 / 255
    torch.manual_seed(0)
    adv = NFGSM(eps=16)(net, x, y)
    torch.manual_seed(0)
    eta = (x + torch.empty_like(x).uniform_(-2 * eps, 2 * eps)).clamp(0, 1) - x
    expected = (x + eta + eps * _grad(net, x + eta, y).sign()).clamp(0, 1)
    assert torch.allclose(adv, expected, atol=1e-6)
    dist = (adv - x).abs() * 255
    assert dist.max() <= 3 * 16 + 1e-3
    assert (dist > 16 + 1e-3).float().mean() > 0.2  # no projection to the ball
    assert adv.min() >= 0 and adv.max() <= 1


def test_sizes_follow_eps_as_the_warmup_sets_it(setup):
    net, x, y = setup
    nfgsm, fgsmrs = NFGSM(eps=32, noise_ratio=4), FGSMRS(eps=32)
    for attack in (nfgsm, fgsmrs):
        attack.eps = 4  # what AdversarialTrainingHook does during eps warm-up
    assert fgsmrs.get_step_size() == pytest.approx(5.0)
    assert nfgsm.get_step_size() == pytest.approx(4.0)
    dist = (nfgsm(net, x, y) - x).abs().max() * 255
    assert 4 < dist <= 5 * 4 + 1e-3
    assert (fgsmrs(net, x, y) - x).abs().max() * 255 <= 4 + 1e-3


def test_registered_with_checked_arguments():
    assert isinstance(build_attack(dict(type='NFGSM', eps=8, noise_ratio=1)), NFGSM)
    attack = build_attack(dict(type='FGSMRS', eps=8))
    assert isinstance(attack, FGSMRS) and attack.steps == 1
    assert 'FGSMRS(eps=8' in repr(attack)
    with pytest.raises(ValueError, match='`steps` must stay 1'):
        attack.steps = 3
    for cfg, key in [
        (dict(type='NFGSM', noise_ratio=-1), 'noise_ratio'),
        (dict(type='FGSMRS', step_ratio=0), 'step_ratio'),
        (dict(type='FGSMRS', random_start='normal'), 'random_start'),
        (dict(type='NFGSM', eps=-2), 'eps'),
    ]:
        # check_number's and check_bool's messages name Class.key; eps the
        # attacks' shared pixel-size rule (`eps=-2 must be ...`)
        with pytest.raises((TypeError, ValueError), match=rf'\.{key}\b| {key}=-'):
            build_attack(cfg)
    with pytest.raises(TypeError):
        build_attack(dict(type='NFGSM', steps=2))  # no such argument


@pytest.mark.parametrize(
    'pre,model',
    [
        (dict(eps=32, attack=dict(type='NFGSM')), {}),
        (dict(eps=32, attack=dict(type='FGSMRS')), dict(adv_loss_weight=1.0, adv_forward='concat')),
        (dict(eps=32, attack=dict(type='NFGSM', loss='kl')), dict(adv_loss='trades')),
        (
            dict(eps=32, attack=dict(type='FGSMRS', random_start=False, step_ratio=1.0)),
            dict(grad_align_lambda=0.5),
        ),
        (
            dict(
                eps=32,
                attack=dict(type='NFGSM'),
                batch_augments=dict(augments=dict(type='Mixup', alpha=1.0)),
            ),
            {},
        ),  # soft labels
    ],
)
def test_trains_through_the_preprocessor_and_hook(pre, model):
    pre = dict(type='PGDDataPreprocessor', mean=[0.0] * 3, std=[255.0] * 3, num_classes=10, **pre)
    classifier = build_classifier(data_preprocessor=pre, **model)
    hook = AdversarialTrainingHook(eps_warmup=2, adv_val_interval=0)
    runner = SimpleNamespace(model=classifier, iter=0, epoch=0, train_dataloader=[None] * 4)
    hook.before_run(runner)
    hook.before_train_iter(runner, 0)
    attack = classifier.data_preprocessor.attack
    assert attack.eps == pytest.approx(32 / 8)  # 1 of 8 warm-up iterations
    optim = torch.optim.SGD(classifier.parameters(), lr=0.01)
    before = copy.deepcopy(classifier.state_dict())
    classifier.train()
    torch.manual_seed(0)
    numpy_state = np.random.get_state()  # Mixup draws from numpy: leave it as found
    try:
        logs = classifier.train_step(digits_batch(16), OptimWrapper(optim))
    finally:
        np.random.set_state(numpy_state)
    assert all(torch.isfinite(v) for v in logs.values())
    assert any(not torch.equal(before[k], v) for k, v in classifier.state_dict().items())
    if 'grad_align_lambda' in model:
        assert 'loss_grad_align' in logs and 0 < logs['loss_grad_align'] < 1
        assert -1 <= classifier.adv_log_vars['grad_align_cos'] <= 1
