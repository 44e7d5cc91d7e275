"""``target_batch``: APGD-T's and FAB-T's rows and FAB's projection in slices, the same numbers."""

import pytest
import torch

from nofrost_mm.attacks import APGDAttack, AutoAttack, FABAttack, SquareAttack
from nofrost_mm.attacks.autoattack.autoattack_member import AUTO_ROW_ELEMENTS, rows_per_pass
from nofrost_mm.attacks.autoattack.fab import boundary_steps, projection_linf
from nofrost_mm.registry import ATTACKS
from nofrost_mm.utils.sample_random import sample_keys
from ..toy import digits_8x8
from .tiny_cnn import trained_tiny_cnn

EPS = 12


@pytest.fixture(scope='module')
def tiny():
    x, y = digits_8x8(40, 'test')
    return trained_tiny_cnn(), x, y, sample_keys(0, torch.arange(len(x)))


def test_auto_rows_follow_the_image_size():
    assert rows_per_pass('auto', torch.zeros(1, 3, 224, 224)) == 222
    assert rows_per_pass('auto', torch.zeros(1, 3, 32, 32)) == AUTO_ROW_ELEMENTS // 3072
    assert rows_per_pass(None, torch.zeros(1, 3, 8, 8)) is None
    assert rows_per_pass(5, torch.zeros(1, 3, 8, 8)) == 5
    # the default of all three
    assert AutoAttack().members[1][1].target_batch == 'auto'
    assert APGDAttack().target_batch == FABAttack().target_batch == 'auto'


def test_projection_in_slices_gives_the_same_steps_bit_for_bit():
    torch.manual_seed(0)
    rows, dim = 11, 48
    x1, im2 = torch.rand(rows, dim), torch.rand(rows, dim)
    w = torch.randn(rows, dim)
    w[3, :20] = 0  # zero coordinates are left where they are
    b = torch.randn(rows)
    whole = projection_linf(torch.cat((x1, im2)), torch.cat((w, w)), torch.cat((b, b)))
    for chunk in (None, 1, 4, 22, 100):
        d1, d2 = boundary_steps(x1, im2, w, b, chunk)
        assert torch.equal(torch.cat((d1, d2)), whole), chunk
    # negative control: the slices are not the same rows twice
    d1, _ = boundary_steps(x1, im2, w, b, 4)
    assert not torch.equal(d1, whole[rows:])


def test_fab_iterates_are_the_same_with_a_sliced_projection(tiny):
    model, x, y, _ = tiny
    # one pass of 24 rows; target_batch=5 only slices the projection
    attack = FABAttack(eps=EPS, steps=8, target_batch=5)
    full = FABAttack(eps=EPS, steps=8, target_batch=None)
    target = (y[:24] + 1) % 10
    groups = torch.arange(24)
    sliced = attack._run(model, x[:24], y[:24], target, groups)
    whole = full._run(model, x[:24], y[:24], target, groups)
    assert sliced[0].any() and not sliced[0].all()
    assert torch.equal(sliced[0], whole[0]) and torch.equal(sliced[1], whole[1])


@pytest.mark.parametrize('target_batch', [1, 7, 40])
def test_sliced_targets_break_the_samples_of_one_pass(tiny, target_batch):
    model, x, y, keys = tiny
    for cls, kw in ((APGDAttack, dict(loss='dlr-targeted')), (FABAttack, {})):
        full = cls(eps=EPS, steps=6, target_batch=None, **kw)(model, x, y, keys=keys)
        auto = cls(eps=EPS, steps=6, **kw)(model, x, y, keys=keys)
        # 'auto' holds every row of these 8x8 images in one pass
        assert torch.equal(full, auto)
        sliced = cls(eps=EPS, steps=6, target_batch=target_batch, **kw)(model, x, y, keys=keys)
        broken = model(full).argmax(1) != y
        assert 0 < int(broken.sum()) < len(y)
        assert torch.equal(broken, model(sliced).argmax(1) != y), cls


def test_autoattack_robust_accuracy_is_the_same_in_slices(tiny):
    model, x, y, keys = tiny
    runs = {}
    for tb in (None, 'auto', 6):
        aa = AutoAttack(eps=EPS, target_batch=tb)
        assert [m.target_batch for _, m in aa.members[1:3]] == [tb, tb]
        # the standard cascade with fewer iterations and queries
        aa.members = [
            ('apgd-ce', APGDAttack(eps=EPS, steps=10)),
            ('apgd-t', APGDAttack(eps=EPS, steps=10, loss='dlr-targeted', target_batch=tb)),
            ('fab-t', FABAttack(eps=EPS, steps=10, target_batch=tb)),
            ('square', SquareAttack(eps=EPS, n_queries=200)),
        ]
        runs[tb] = aa(model, x, y, keys=keys)
    robust = {tb: model(adv).argmax(1) == y for tb, adv in runs.items()}
    assert torch.equal(robust[None], robust['auto'])
    assert torch.equal(robust[None], robust[6])
    assert 0 < int(robust[None].sum()) < len(y)


@pytest.mark.parametrize('value', [0, -3, 2.5, 'all', True])
def test_bad_target_batch_names_the_allowed_values(value):
    for type_ in ('AutoAttack', 'APGDAttack', 'FABAttack'):
        with pytest.raises(ValueError, match="target_batch=.*'auto'.*None"):
            ATTACKS.build(dict(type=type_, eps=8, target_batch=value))
