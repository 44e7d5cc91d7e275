"""torchattacks attacks built from the ATTACKS registry (sizes in pixel units)."""
import sys

import pytest
import torch
import torchattacks
import torch.nn as nn
from mmpretrain.registry import DATASETS

import nofrost_mm  # noqa: F401
from nofrost_mm.attacks import CWLinf, PGDAttack, attack_context, build_attack
from nofrost_mm.attacks.torchattacks_adapter import NOT_ADAPTED, TorchAttack
from nofrost_mm.registry import ATTACKS
from tests.conftest import run_tool


@pytest.fixture(scope='module')
def net_and_batch():
    """A small MLP trained for a second on real digits (a random net predicts
    one class everywhere, which no attack can change)."""
    ds = DATASETS.build(dict(type='SklearnDigits', split='train'))
    images = torch.stack([torch.from_numpy(d['img']).permute(2, 0, 1)
                          for d in (ds[i] for i in range(len(ds)))]).float() / 255.
    labels = torch.tensor([ds[i]['gt_label'] for i in range(len(ds))])
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 64), nn.ReLU(),
                        nn.Dropout(0.1), nn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for step in range(150):
        idx = torch.randint(len(ds), (64, ))
        opt.zero_grad()
        nn.functional.cross_entropy(net(images[idx]), labels[idx]).backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        keep = net(images[:200]).argmax(1) == labels[:200]
    assert keep.float().mean() > 0.8
    return net, net, images[:200][keep][:48], labels[:200][keep][:48]


def test_every_torchattacks_attack_is_registered():
    names = [n for n in torchattacks.__all__ if n not in NOT_ADAPTED]
    for name in names:
        cls = ATTACKS.get(name)
        assert issubclass(cls, TorchAttack)
        assert cls.attack_cls is getattr(torchattacks, name)
    assert ATTACKS.get('CWLinf') is CWLinf


def test_importing_the_plugin_leaves_torchattacks_until_an_adapter_is_built():
    # torchattacks costs ~0.8 s of every process's start (scipy.stats)
    code = ('import sys, nofrost_mm\n'
            'from nofrost_mm.registry import ATTACKS\n'
            'assert "torchattacks" not in sys.modules\n'
            'assert ATTACKS.get("AutoAttack") is not None\n'
            'assert "torchattacks" not in sys.modules\n'
            'ATTACKS.build(dict(type="FGSM", eps=8))\n'
            'assert "torchattacks" in sys.modules\n')
    run_tool([sys.executable, '-c', code])  # fails with the child's stderr


def test_sizes_are_converted_and_autoattack_gets_classes_and_seed(net_and_batch):
    model, net, images, labels = net_and_batch
    pgd = build_attack(dict(type='PGD', eps=8, alpha=2, steps=1))
    with attack_context(model):
        adv = pgd(net, images[:4], labels[:4])
    assert pgd._attack.eps == pytest.approx(8 / 255)
    assert pgd._attack.alpha == pytest.approx(2 / 255)
    assert (adv - images[:4]).abs().max() <= 8 / 255 + 1e-6

    aa = build_attack(dict(type='AutoAttack', eps=8, version='standard'))
    assert aa._ta_kwargs == dict(eps=8 / 255, version='standard', seed=0)
    sub = aa._make(net, num_classes=7)._autoattack.attacks  # not the default 10
    assert [a.n_target_classes for a in sub
            if hasattr(a, 'n_target_classes')] == [6, 6]
    assert {a.seed for a in sub} == {0}
    aa(net, images[:2], labels[:2])  # the number of classes comes from the logits
    assert aa._attack._autoattack.attacks[1].n_target_classes == 9


@pytest.mark.parametrize('cfg, match', [
    (dict(type='PGD', epsilon=8), r"unknown argument\(s\) \['epsilon'\]; "
     r"torchattacks.PGD accepts \['eps', 'alpha', 'steps', 'random_start'\]"),
    (dict(type='PGD', eps=300), r'eps=300 is out of range \(0, 255\]'),
    (dict(type='FGSM', eps=8 / 255), r'looks like a \[0, 1\]-scale value'),
    (dict(type='APGD', eps=-1), 'must be a positive number'),
    (dict(type='AutoAttack', eps=8, version='fast'), 'Not valid version'),
    (dict(type='APGD', eps=8, norm='L1'), r"norm='L1' is not one of \('Linf', 'L2'\)"),
])
def test_bad_configs_fail_when_built(cfg, match):
    with pytest.raises((TypeError, ValueError), match=match):
        build_attack(cfg)


def test_model_modes_are_restored(net_and_batch):
    model, net, images, labels = net_and_batch
    net.train()  # torchattacks would call .train() on the whole tree after
    net[3].eval()
    try:
        build_attack(dict(type='FGSM', eps=8))(net, images[:2], labels[:2])
        assert net.training and not net[3].training
    finally:
        net.eval()


def test_plugin_pgd_matches_torchattacks_pgd(net_and_batch):
    model, net, images, labels = net_and_batch
    ta = build_attack(dict(type='PGD', eps=24, alpha=4, steps=10,
                           random_start=False))
    ours = PGDAttack(eps=24, steps=10, step_size=4, random_start=False)
    with attack_context(model), torch.no_grad():
        with torch.enable_grad():
            adv_ta, adv_ours = ta(net, images, labels), ours(net, images, labels)
        acc_ta = (net(adv_ta).argmax(1) == labels).float().mean().item()
        acc_ours = (net(adv_ours).argmax(1) == labels).float().mean().item()
    assert 0.1 < acc_ta < 0.9, acc_ta  # the attack does something
    assert abs(acc_ta - acc_ours) <= 1 / len(labels) + 1e-9


def test_cw_linf_is_pgd_on_the_cw_margin():
    attack = build_attack(dict(type='CWLinf', eps=8, steps=20))
    assert isinstance(attack, PGDAttack)
    assert (attack.loss, attack.confidence, attack.norm) == ('cw', 50., 'Linf')


# fra31/auto-attack, autoattack.py: the members built in AutoAttack.__init__
# and changed by set_version('standard') (Linf/L2), all with the one seed
REFERENCE_STANDARD = [
    ('APGD', dict(steps=100, n_restarts=1, loss='ce', eot_iter=1, thr_decr=0.75)),
    ('APGDT', dict(steps=100, n_restarts=1, n_target_classes=9, eot_iter=1,
                   thr_decr=0.75)),
    ('FAB', dict(steps=100, n_restarts=1, multi_targeted=True, n_target_classes=9,
                 alpha_max=0.1, eta=1.05, beta=0.9)),
    ('Square', dict(n_queries=5000, n_restarts=1, p_init=0.8, loss='margin',
                    rescale_schedule=False)),
]


@pytest.mark.parametrize('norm,eps', [('Linf', 8), ('L2', 127.5)])
def test_autoattack_members_follow_the_reference_settings(norm, eps):
    """Every member's settings equal fra31/auto-attack's standard version."""
    import torch.nn as nn

    from nofrost_mm.registry import ATTACKS

    attack = ATTACKS.build(dict(type='AutoAttack', eps=eps, norm=norm,
                                version='standard', seed=7))
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 20))
    ensemble = attack._make(model, num_classes=20)
    members = ensemble._autoattack.attacks
    assert [type(m).__name__ for m in members] == [n for n, _ in REFERENCE_STANDARD]
    for member, (name, settings) in zip(members, REFERENCE_STANDARD):
        got = {k: getattr(member, k) for k in settings}
        assert got == settings, name
        assert member.seed == 7 and member.norm == norm, name
        assert member.eps == pytest.approx(eps / 255), name
    # with fewer classes than 10 the targets are every other class
    small = attack._make(model, num_classes=5)._autoattack.attacks
    assert small[1].n_target_classes == small[2].n_target_classes == 4


@pytest.mark.parametrize('name', ['FAB', 'Square', 'AutoAttack'])
def test_torchattacks_run_on_a_channels_last_model(name):
    """torchattacks' .view() calls get NCHW images and gradients (channels_last = True)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 8 * 8, 10)).to(memory_format=torch.channels_last)
    images = torch.rand(6, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    labels = model(images).argmax(1).detach()
    kwargs = dict(FAB=dict(steps=3), Square=dict(n_queries=20), AutoAttack={})[name]
    attack = build_attack(dict(type=name, eps=8, **kwargs))
    with attack_context(model):
        adv = attack(model, images, labels)
    assert adv.shape == images.shape
    assert (adv - images).abs().max() <= 8 / 255 + 1e-6
