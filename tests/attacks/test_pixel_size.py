"""One pixel-unit rule for the plug-in's attacks and the torchattacks adapters."""

import pytest

import nofrost_mm  # noqa: F401
from nofrost_mm.attacks import build_attack
from nofrost_mm.attacks.pixel_size import check_pixel_size


@pytest.mark.parametrize(
    'attack',
    [
        dict(type='PGDAttack', steps=10),
        dict(type='FGSMRS'),
        dict(type='NFGSM'),
        dict(type='CWLinf'),
        dict(type='PGD'),
        dict(type='FGSM'),
    ],
)
def test_a_zero_one_scale_eps_is_refused_by_every_attack(attack):
    with pytest.raises(ValueError) as info:
        build_attack(dict(attack, eps=0.03))
    assert (
        f"attack {attack['type']}: eps=0.03 looks like a [0, 1]-scale value; "
        'sizes are in pixel units of 255 (use eps=7.65 for 0.03 in [0, 1])'
    ) in str(info.value)


@pytest.mark.parametrize('attack', [dict(type='PGDAttack'), dict(type='NFGSM')])
def test_pixel_unit_sizes_and_zero_are_accepted_by_the_own_attacks(attack):
    for eps in (0, 0.5, 8, 255):
        assert build_attack(dict(attack, eps=eps)).eps == eps


def test_l2_radii_are_not_held_to_the_linf_bounds():
    # 0.3/255 is a legitimate (small) L2 radius; 300/255 too
    assert build_attack(dict(type='PGDAttack', eps=0.3, norm='L2')).eps == 0.3
    assert build_attack(dict(type='PGDAttack', eps=300, norm='L2')).eps == 300


@pytest.mark.parametrize(
    'value, allow_zero, match',
    [
        (-8, True, r'eps=-8 must be a number >= 0 in pixel units of 255'),
        (0, False, r'eps=0 must be a positive number in pixel units of 255'),
        ('8', True, r"eps='8' must be a number >= 0"),
        (True, True, r'eps=True must be a number >= 0'),
        (300, True, r'eps=300 is out of range \(0, 255\] for an L-inf attack'),
    ],
)
def test_bad_values_name_the_attack_and_key(value, allow_zero, match):
    with pytest.raises(ValueError, match='attack A: ' + match):
        check_pixel_size('A', 'eps', value, 'Linf', allow_zero=allow_zero)


def test_only_radii_are_checked_for_the_zero_one_scale():
    check_pixel_size('A', 'alpha', 0.25, 'Linf')  # a small step is fine
