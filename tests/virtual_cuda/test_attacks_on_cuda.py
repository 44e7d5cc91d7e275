"""Every attack on the virtual CUDA device: no device mix, no CPU generator,
the adversarial images on the device, with and without per-sample keys."""

import pytest

from nofrost_mm.attacks import (
    FGSMRS,
    NFGSM,
    APGDAttack,
    AutoAttack,
    CWLinf,
    FABAttack,
    PGDAttack,
    SquareAttack,
    attack_context,
    build_attack,
)
from .tiny import eval_net
from .vcuda import VDEV, is_vcuda, virtual_cuda

ATTACKS = {
    'PGD Linf': lambda: PGDAttack(eps=8, steps=2),
    'PGD L2': lambda: PGDAttack(eps=128, steps=2, norm='L2'),
    'PGD targeted': lambda: PGDAttack(eps=8, steps=2, targeted=True),
    'PGD cw': lambda: PGDAttack(eps=8, steps=2, loss='cw'),
    'PGD kl normal start': lambda: PGDAttack(eps=8, steps=2, loss='kl', random_start='normal'),
    'PGD early exit': lambda: PGDAttack(eps=8, steps=3, early_exit=True),
    'PGD L2 early exit': lambda: PGDAttack(eps=128, steps=3, norm='L2', early_exit=True),
    'FGSM-RS': lambda: FGSMRS(eps=8),
    'FGSM-RS no clip': lambda: FGSMRS(eps=8, clip_start=False),
    'N-FGSM': lambda: NFGSM(eps=8),
    'CW-Linf': lambda: CWLinf(eps=8, steps=2),
    'APGD-CE': lambda: APGDAttack(eps=1, steps=4),
    'APGD-T': lambda: APGDAttack(eps=1, steps=4, loss='dlr-targeted', n_target_classes=3),
    'FAB-T': lambda: FABAttack(eps=1, steps=3, n_target_classes=3),
    'Square': lambda: SquareAttack(eps=1, n_queries=30),
    'torchattacks PGD': lambda: build_attack(dict(type='PGD', eps=8, alpha=2, steps=2)),
}


# torchattacks' attacks draw from torch's generator only (no per-sample keys)
CASES = [
    (name, keys)
    for name in sorted(ATTACKS)
    for keys in (False, True)
    if not (keys and name.startswith('torchattacks'))
]


@pytest.mark.parametrize(
    'name,keys', CASES, ids=[f'{n}-{"keys" if k else "rng"}' for n, k in CASES]
)
def test_attack_runs_on_cuda(name, keys):
    attack = ATTACKS[name]()
    with virtual_cuda() as seen:
        model, net, images, labels, sample_keys = eval_net()
        with attack_context(model):
            adv = attack(net, images, labels, **(dict(keys=sample_keys) if keys else {}))
    assert is_vcuda(adv) and adv.device == VDEV
    assert not seen.mismatches
    delta = (adv - images).flatten(1)
    radius = delta.norm(dim=1) if getattr(attack, 'norm', 'Linf') == 'L2' else delta.abs().amax(1)
    # N-FGSM does not project: noise of 2 eps plus one step of eps
    reach = 3 if isinstance(attack, NFGSM) else 1
    assert bool((radius <= reach * getattr(attack, 'eps', 8) / 255 + 1e-6).all())
    assert bool(adv.min() >= 0) and bool(adv.max() <= 1)


def small_autoattack(fold: bool) -> AutoAttack:
    aa = AutoAttack(eps=1, fold_batch_norm=fold)
    aa.members = [
        ('apgd-ce', APGDAttack(eps=1, steps=3)),
        ('apgd-t', APGDAttack(eps=1, steps=3, loss='dlr-targeted', n_target_classes=3)),
        ('fab-t', FABAttack(eps=1, steps=3, n_target_classes=3)),
        ('square', SquareAttack(eps=1, n_queries=30)),
    ]
    return aa


@pytest.mark.parametrize('fold', [True, False], ids=['folded-bn', 'eval-bn'])
def test_autoattack_runs_every_member_on_cuda(fold):
    aa = small_autoattack(fold)
    ran = []
    for name, member in aa.members:
        perturb = member.perturb

        def counted(*args, _perturb=perturb, _name=name, **kwargs):
            ran.append(_name)
            return _perturb(*args, **kwargs)

        member.perturb = counted
    with virtual_cuda() as seen:
        # eps=1/255 on a random net: most samples survive to the last member
        model, net, images, labels, keys = eval_net(n=8)
        with attack_context(model):
            adv = aa(net, images, labels, keys=keys)
    assert is_vcuda(adv) and not seen.mismatches
    assert ran == ['apgd-ce', 'apgd-t', 'fab-t', 'square'], ran
