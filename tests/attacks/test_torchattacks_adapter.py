"""torchattacks attacks built from the ATTACKS registry (sizes in pixel units)."""

import sys

import pytest
import torch
import torch.nn as nn
import torchattacks
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
    images = (
        torch.stack(
            [torch.from_numpy(d['img']).permute(2, 0, 1) for d in (ds[i] for i in range(len(ds)))]
        ).float()
        / 255.0
    )
    labels = torch.tensor([ds[i]['gt_label'] for i in range(len(ds))])
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Flatten(), nn.Linear(3 * 32 * 32, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 10)
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for step in range(150):
        idx = torch.randint(len(ds), (64,))
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
    code = (
        'import sys, nofrost_mm\n'
        'from nofrost_mm.registry import ATTACKS\n'
        'assert "torchattacks" not in sys.modules\n'
        'assert ATTACKS.get("AutoAttack") is not None\n'
        'ATTACKS.build(dict(type="AutoAttack", eps=8))  # the plug-in\'s own\n'
        'assert "torchattacks" not in sys.modules\n'
        'ATTACKS.build(dict(type="FGSM", eps=8))\n'
        'assert "torchattacks" in sys.modules\n'
    )
    run_tool([sys.executable, '-c', code])  # fails with the child's stderr


def test_sizes_are_converted(net_and_batch):
    model, net, images, labels = net_and_batch
    pgd = build_attack(dict(type='PGD', eps=8, alpha=2, steps=1))
    with attack_context(model):
        adv = pgd(net, images[:4], labels[:4])
    assert pgd._attack.eps == pytest.approx(8 / 255)
    assert pgd._attack.alpha == pytest.approx(2 / 255)
    assert (adv - images[:4]).abs().max() <= 8 / 255 + 1e-6
    # torchattacks' APGDT gets the number of classes from the logits
    apgdt = build_attack(dict(type='APGDT', eps=8, steps=1))
    with attack_context(model):
        apgdt(net, images[:2], labels[:2])
    assert apgdt._attack.n_target_classes == 9 and apgdt._attack.seed == 0


@pytest.mark.parametrize(
    'cfg, match',
    [
        (
            dict(type='PGD', epsilon=8),
            r"unknown argument\(s\) \['epsilon'\]; "
            r"torchattacks.PGD accepts \['eps', 'alpha', 'steps', 'random_start'\]",
        ),
        (dict(type='PGD', eps=300), r'eps=300 is out of range \(0, 255\]'),
        (dict(type='FGSM', eps=8 / 255), r'looks like a \[0, 1\]-scale value'),
        (dict(type='APGD', eps=-1), 'must be a positive number'),
        (dict(type='AutoAttack', eps=8, version='fast'), "version='fast' is not one of"),
        (dict(type='APGD', eps=8, norm='L1'), r"norm='L1' is not one of \('Linf', 'L2'\)"),
    ],
)
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
    ta = build_attack(dict(type='PGD', eps=24, alpha=4, steps=10, random_start=False))
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
    assert (attack.loss, attack.confidence, attack.norm) == ('cw', 50.0, 'Linf')


@pytest.mark.parametrize('name', ['FAB', 'Square'])
def test_torchattacks_run_on_a_channels_last_model(name):
    """torchattacks' .view() calls get NCHW images and gradients (channels_last = True)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10)
    ).to(memory_format=torch.channels_last)
    images = torch.rand(6, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    labels = model(images).argmax(1).detach()
    kwargs = dict(FAB=dict(steps=3), Square=dict(n_queries=20))[name]
    attack = build_attack(dict(type=name, eps=8, **kwargs))
    with attack_context(model):
        adv = attack(model, images, labels)
    assert adv.shape == images.shape
    assert (adv - images).abs().max() <= 8 / 255 + 1e-6


class _SqueezingNet(nn.Module):
    """Squeezes its features as mmpretrain's LeNet5 does: one image gives a
    1-d output."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).squeeze()


def test_the_class_count_of_a_net_that_squeezes_one_image(net_and_batch):
    net, _, images, labels = net_and_batch
    squeezing = _SqueezingNet(net)
    assert squeezing(images[:1]).dim() == 1
    attack = build_attack(dict(type='FGSM', eps=8))
    adv = attack(squeezing, images[:8], labels[:8])
    assert adv.shape == images[:8].shape
    assert (adv - images[:8]).abs().max() <= 8 / 255 + 1e-6
