"""PGDAttack: constraints, strength against torchattacks, options, input checks."""

import pytest
import torch
import torch.nn.functional as F
import torchattacks

from nofrost_mm.attacks import NormalizedClassifier, PGDAttack, attack_context, build_attack
from tests.attacks.toy import clean_preprocess, digits_batch, trained_classifier


@pytest.fixture(scope='module')
def setup():
    model = trained_classifier('bn', type='ImageClassifier')
    data = clean_preprocess(model, digits_batch(64, split='test'), training=False)
    images = data['inputs']  # the digits preprocessor divides by 255: [0, 1]
    labels = torch.cat([s.gt_label for s in data['data_samples']])
    return NormalizedClassifier(model, [0.0] * 3, [255.0] * 3), images, labels


def _loss(net, x, y):
    with torch.no_grad():
        return F.cross_entropy(net(x), y).item()


@pytest.mark.parametrize(
    'kwargs',
    [
        dict(eps=8),
        dict(eps=32, steps=3),
        dict(eps=16, norm='L2'),
        dict(eps=8, random_start=False),
        dict(eps=8, loss='cw', confidence=50),
        dict(eps=8, targeted=True),
        dict(eps=4, step_size=10.0),
    ],
)
def test_stays_within_eps_and_range(setup, kwargs):
    net, images, labels = setup
    adv = PGDAttack(**kwargs)(net, images, labels)
    assert not adv.requires_grad and adv.shape == images.shape
    assert adv.min() >= 0 and adv.max() <= 1
    delta = (adv - images).flatten(1)
    dist = delta.norm(dim=1) if kwargs.get('norm') == 'L2' else delta.abs().amax(dim=1)
    assert dist.max() * 255 <= kwargs['eps'] + 1e-3
    assert dist.max() * 255 > kwargs['eps'] / 4  # it did move


@pytest.mark.parametrize('eps,steps', [(8, 10), (32, 5)])
def test_at_least_as_strong_as_torchattacks_pgd(setup, eps, steps):
    net, images, labels = setup
    ours = PGDAttack(eps=eps, steps=steps)
    reference = torchattacks.PGD(
        net, eps=eps / 255, alpha=ours.get_step_size() / 255, steps=steps, random_start=True
    )
    clean = _loss(net, images, labels)
    torch.manual_seed(1)
    ours_loss = _loss(net, ours(net, images, labels), labels)
    torch.manual_seed(1)
    ref_loss = _loss(net, reference(images, labels), labels)
    assert ours_loss > clean + 0.5
    assert ours_loss >= ref_loss - 1e-3, (ours_loss, ref_loss)


def test_default_step_size_is_the_official_one():
    assert PGDAttack(eps=8, steps=10).get_step_size() == pytest.approx(1.0)
    assert PGDAttack(eps=32, steps=5).get_step_size() == pytest.approx(36 / 5)
    attack = PGDAttack(eps=8, steps=10)
    attack.eps, attack.steps = 16, 4  # as the hook's schedules do
    assert attack.get_step_size() == pytest.approx(5.0)
    assert PGDAttack(step_size=0.5).get_step_size() == 0.5


def test_targeted_reaches_random_wrong_classes(setup):
    net, images, labels = setup
    torch.manual_seed(3)
    adv = PGDAttack(eps=64, steps=20, targeted=True)(net, images, labels)
    with torch.no_grad():
        pred = net(adv).argmax(dim=1)
    torch.manual_seed(3)  # replay the attack's draws: random start, then targets
    torch.empty_like(images).uniform_()
    shift = torch.randint(1, 10, labels.shape)
    targets = (labels + shift) % 10
    assert (targets != labels).all()
    assert (pred == targets).float().mean() > 0.5


def test_one_hot_soft_labels_equal_hard_labels(setup):
    net, images, labels = setup
    attack = PGDAttack(eps=16, steps=3)
    torch.manual_seed(0)
    hard = attack(net, images, labels)
    torch.manual_seed(0)
    soft = attack(net, images, F.one_hot(labels, 10).float())
    assert torch.allclose(hard, soft, atol=1e-6)


def test_cw_confidence_keeps_pushing(setup):
    net, images, labels = setup
    adv = PGDAttack(eps=32, steps=10, loss='cw', confidence=50)(net, images, labels)
    with torch.no_grad():
        assert (net(adv).argmax(1) == labels).float().mean() < (
            net(images).argmax(1) == labels
        ).float().mean()


def test_input_gradients_only_and_works_under_no_grad(setup):
    net, images, labels = setup
    for p in net.parameters():
        p.grad = None
    with torch.no_grad():  # as in mmengine's val loop
        adv = PGDAttack(eps=8, steps=2)(net, images, labels)
    assert (adv != images).any()
    assert all(p.grad is None for p in net.parameters())


def test_eps_zero_returns_the_images(setup):
    net, images, labels = setup
    assert torch.equal(PGDAttack(eps=0, steps=0)(net, images, labels), images)


@pytest.mark.parametrize(
    'kwargs,key',
    [
        (dict(eps=-1), 'eps'),
        (dict(steps=0), 'steps'),
        (dict(steps=2.5), 'steps'),
        (dict(step_size=0), 'step_size'),
        (dict(norm='L1'), 'norm'),
        (dict(loss='dlr'), 'loss'),
        (dict(confidence=-1), 'confidence'),
        (dict(num_classes=1), 'num_classes'),
    ],
)
def test_bad_settings_name_the_key(kwargs, key):
    # sizes follow the attacks' shared pixel-unit rule (`eps=-1 must be ...`),
    # the others check_number's and check_choice's (`PGDAttack.steps=0 is ...`)
    with pytest.raises((TypeError, ValueError), match=rf'PGDAttack\.{key}\b| {key}=-'):
        PGDAttack(**kwargs)


def test_bad_inputs_are_clear(setup):
    net, images, labels = setup
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        PGDAttack()(net, images * 255, labels)
    with pytest.raises(ValueError, match='labels'):
        PGDAttack()(net, images, labels[:3])
    with pytest.raises(ValueError, match='num_classes=100'):
        PGDAttack(num_classes=100)(net, images, labels)


def test_built_from_registry_under_mmpretrain_scope():
    attack = build_attack(dict(type='PGDAttack', eps=4, steps=2, norm='L2'))
    assert isinstance(attack, PGDAttack) and attack.norm == 'L2'
    with pytest.raises(ValueError, match='norm'):
        build_attack(dict(type='PGDAttack', norm='bad'))


def test_attack_context_is_what_callers_use(setup):
    net, images, labels = setup
    model = net.classifier
    model.train()
    with attack_context(model) as m:
        adv = PGDAttack(eps=8, steps=2)(
            NormalizedClassifier(m, [0.0] * 3, [255.0] * 3), images, labels
        )
    assert model.training and adv.shape == images.shape
    model.eval()


@pytest.mark.parametrize(
    'kwargs',
    [
        dict(eps=8, steps=10),
        dict(eps=16, steps=5, norm='L2'),
        dict(eps=8, steps=10, loss='cw'),
        dict(eps=8, steps=10, targeted=True),
    ],
)
def test_early_exit_is_never_weaker_than_the_last_iterate(setup, kwargs):
    net, images, labels = setup
    torch.manual_seed(3)
    last = PGDAttack(**kwargs)(net, images, labels)
    torch.manual_seed(3)
    early = PGDAttack(early_exit=True, **kwargs)(net, images, labels)
    with torch.no_grad():
        ok_last = net(last).argmax(1) == labels
        ok_early = net(early).argmax(1) == labels
    eps = kwargs['eps'] / 255 + 1e-6
    delta = (early - images).flatten(1)
    dist = delta.norm(dim=1) if kwargs.get('norm') == 'L2' else delta.abs().amax(dim=1)
    assert dist.max() <= eps and early.min() >= 0 and early.max() <= 1
    # survivors took the same path as in the plain attack: a subset
    assert not (ok_early & ~ok_last).any()
    assert torch.allclose(early[ok_early], last[ok_early], atol=1e-6)
    assert ok_last.sum() > ok_early.sum() or ok_last.float().mean() < 0.95


def test_early_exit_removes_broken_samples_from_later_steps(setup):
    net, images, labels = setup
    sizes = []
    counting = lambda x: (sizes.append(len(x)), net(x))[1]  # noqa: E731
    PGDAttack(eps=32, steps=10, early_exit=True)(counting, images, labels)
    assert sizes[0] == len(images) and sizes[-1] < sizes[0]
    assert sizes == sorted(sizes, reverse=True)


def test_early_exit_is_refused_with_the_kl_loss():
    with pytest.raises(ValueError, match='early_exit'):
        PGDAttack(loss='kl', random_start='normal', early_exit=True)


@pytest.mark.parametrize(
    'kwargs',
    [
        dict(eps=16, steps=2),
        dict(eps=16, steps=2, norm='L2'),
        dict(eps=16, random_start='normal'),
        dict(eps=16, steps=2, targeted=True),
        dict(eps=16, steps=3, early_exit=True),
    ],
)
def test_with_keys_a_samples_attack_does_not_depend_on_its_batch(setup, kwargs):
    from nofrost_mm.utils import sample_keys

    net, images, labels = setup
    attack = PGDAttack(**kwargs)
    keys = sample_keys(0, torch.arange(len(images)))
    with attack_context(net.classifier):
        whole = attack(net, images, labels, keys=keys)
        torch.manual_seed(123)  # the global generator plays no part
        part = attack(net, images[5:13], labels[5:13], keys=keys[5:13])
        other = attack(
            net, images[5:13], labels[5:13], keys=sample_keys(1, torch.arange(len(images)))[5:13]
        )
    assert torch.allclose(part, whole[5:13], atol=1e-6)
    assert not torch.allclose(other, part, atol=1e-6)


def test_keys_must_match_the_batch(setup):
    net, images, labels = setup
    with pytest.raises(ValueError, match=r'keys must be \(N,\)'):
        PGDAttack(eps=8)(net, images, labels, keys=torch.zeros(3, dtype=torch.int64))
