"""Attack names and --attacks items given the eps (and step) they name none of."""

import pytest
import torch

import nofrost_mm  # noqa: F401  (registers the attacks)
from nofrost_mm.attacks import (
    attack_settings,
    build_attacks,
    format_settings,
    parse_attack,
    pgd_step_size,
    takes_eps,
    with_eps,
)


def test_takes_eps_reads_the_attacks_own_signature():
    assert takes_eps('PGDAttack') and takes_eps('AutoAttack')
    assert takes_eps('FGSM') and takes_eps('PGD')  # torchattacks adapters
    assert not takes_eps('CW') and not takes_eps('DeepFool')
    assert not takes_eps('NoSuchAttack')


def test_a_name_gets_the_eps_only_where_its_attack_has_one():
    assert with_eps('FGSM', 76.5) == dict(type='FGSM', eps=76.5)
    assert with_eps('CW', 76.5) == 'CW'
    # an unknown name keeps the dict form: building it names the allowed types
    assert with_eps('NoSuchAttack', 8) == dict(type='NoSuchAttack', eps=8)
    # the tools' --attacks items follow the same rule
    assert parse_attack('AutoAttack', 8) == dict(type='AutoAttack', eps=8)
    assert parse_attack('DeepFool', 8) == 'DeepFool'
    assert parse_attack('FGSM') == 'FGSM'
    assert parse_attack("{'type': 'PGD', 'eps': 4}", 8) == dict(type='PGD', eps=4)


def _uniform_gradient_net():
    """Logits (sum x, -sum x): the cross entropy of class 0 falls wherever
    a pixel grows, so PGD moves every pixel the same way, one step at a time."""
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2))
    with torch.no_grad():
        net[1].weight.copy_(torch.stack([torch.ones(48), -torch.ones(48)]))
        net[1].bias.zero_()
    return net


def test_a_bare_pgd_at_the_training_eps_steps_by_the_plugins_rule():
    # eps 0.3 (76.5/255), the MNIST eps: torchattacks' PGD would keep its
    # default step of 2/255 and 10 steps travel 20/255 of the 76.5
    cfg = with_eps('PGD', 76.5)
    assert cfg == dict(type='PGD', eps=76.5, alpha=pgd_step_size(76.5, 10))
    assert cfg['alpha'] == pytest.approx(8.05)  # min(1.25 eps, eps + 4) / 10
    ((name, attack, _),) = build_attacks([cfg])
    assert attack_settings(attack) == dict(eps=76.5, step=pytest.approx(8.05), steps=10, restarts=1)
    assert (
        format_settings(name, attack_settings(attack))
        == 'PGD: eps 76.5, step 8.05, 10 steps, 1 restart'
    )

    # what ran, on a model whose gradient sign is the same at every pixel:
    # without a random start 10 steps of 8.05 reach the ball's edge (76.5)
    # at every pixel, where 2/255 steps would stop at 20
    images = torch.full((4, 3, 4, 4), 0.5)
    labels = torch.zeros(4, dtype=torch.long)
    net = _uniform_gradient_net()
    ((_, no_start, _),) = build_attacks([with_eps(dict(type='PGD', random_start=False), 76.5)])
    delta = (no_start(net, images, labels) - images) * 255
    assert torch.allclose(delta, torch.full_like(delta, -76.5), atol=1e-3)
    # the bare name, from its uniform random start in the ball: pixels end
    # at -76.5 (starts below +4) or 80.5 below their start, -59 on average;
    # at 2/255 they would end 20 below it, -21 on average
    torch.manual_seed(0)
    delta = (attack(net, images, labels) - images) * 255
    assert delta.max() <= 0 and delta.mean() < -45, delta.mean()


def test_a_step_follows_the_eps_only_where_the_eps_was_not_named():
    # a count of steps of its own: the rule for that count
    assert with_eps(dict(type='PGD', steps=40), 76.5)['alpha'] == pytest.approx(80.5 / 40)
    # single-step FFGSM: its one step; report entries: inside `attack`
    assert with_eps('FFGSM', 8) == dict(type='FFGSM', eps=8, alpha=10)
    assert with_eps(dict(attack=dict(type='BIM'), restarts=2), 8) == dict(
        attack=dict(type='BIM', eps=8, alpha=1), restarts=2
    )
    # a step or an eps of its own is kept as written
    assert with_eps(dict(type='PGD', alpha=1), 76.5) == dict(type='PGD', alpha=1, eps=76.5)
    assert with_eps(dict(type='PGD', eps=8), 76.5) == dict(type='PGD', eps=8)
    # attacks without a fixed step, and the plug-in's (their step follows
    # their eps already), get the eps only
    for name in ('FGSM', 'APGD', 'Square', 'AutoAttack', 'PGDAttack'):
        assert with_eps(name, 8) == dict(type=name, eps=8)
    # PIFGSM names its radius max_epsilon; CW has none (also as a dict)
    assert with_eps('PIFGSM', 8) == dict(type='PIFGSM', max_epsilon=8)
    assert with_eps(dict(type='CW', steps=5), 8) == dict(type='CW', steps=5)
    # the input is not changed
    entry = dict(type='PGD')
    with_eps(entry, 8)
    assert entry == dict(type='PGD')


@pytest.mark.parametrize(
    'attack',
    ['PGDL2', dict(type='PGDAttack', norm='L2'), dict(attack=dict(type='APGD', norm='L2'))],
)
def test_an_l2_attack_does_not_take_the_linf_training_eps(attack):
    with pytest.raises(ValueError, match="is an L-inf radius; give its own eps"):
        with_eps(attack, 8)


def test_parse_attack_gives_a_dict_the_eps_and_step_it_names_none_of():
    assert parse_attack("{'type': 'PGD', 'steps': 20}", 32) == dict(
        type='PGD', steps=20, eps=32, alpha=pgd_step_size(32, 20)
    )
    assert parse_attack("{'attack': {'type': 'PGD'}, 'restarts': 3}", 32) == dict(
        attack=dict(type='PGD', eps=32, alpha=pgd_step_size(32, 10)), restarts=3
    )
