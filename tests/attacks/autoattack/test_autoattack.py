"""The plug-in's AutoAttack against the reference implementation (pyautoattack 0.2.0).

A tiny CNN on 8x8 digits keeps the full standard settings (100 iterations,
9 targets, 5000 Square queries) within seconds.
"""

import pytest
import torch
import torch.nn as nn

from nofrost_mm.attacks import APGDAttack, AutoAttack, FABAttack, SquareAttack
from nofrost_mm.attacks.autoattack.autoattack import STANDARD
from nofrost_mm.attacks.autoattack.square import p_selection, square_deltas
from nofrost_mm.registry import ATTACKS
from nofrost_mm.utils.sample_random import sample_keys
from ..toy import digits_8x8
from .tiny_cnn import trained_tiny_cnn

pyautoattack = pytest.importorskip(
    'pyautoattack',
    reason='the reference AutoAttack: pip install --no-deps '
    'pyautoattack==0.2.0 (make install does)',
)

EPS = 12  # /255: APGD-CE leaves about half of the correct samples


@pytest.fixture(scope='module')
def tiny():
    x, y = digits_8x8(48, 'test')
    return trained_tiny_cnn(), x, y


def _reference(model, eps=EPS):
    return pyautoattack.AutoAttack(model, norm='Linf', eps=eps / 255.0, version='standard', seed=0)


def test_standard_settings_are_the_reference_ones(tiny):
    ref = _reference(tiny[0])
    assert ref.attacks_to_run == ['apgd-ce', 'apgd-t', 'fab-t', 'square']
    assert STANDARD['apgd_ce'] == dict(
        steps=ref.apgd.n_iter, n_restarts=ref.apgd.n_restarts, loss='ce', rho=ref.apgd.thr_decr
    )
    t = ref.apgd_targeted
    assert STANDARD['apgd_t'] == dict(
        steps=t.n_iter,
        n_restarts=t.n_restarts,
        loss='dlr-targeted',
        rho=t.thr_decr,
        n_target_classes=t.n_target_classes,
    )
    fab = ref.fab  # FAB-T runs with one restart in the reference's loop
    assert STANDARD['fab_t'] == dict(
        steps=fab.n_iter,
        n_target_classes=fab.n_target_classes,
        alpha_max=fab.alpha_max,
        eta=fab.eta,
        beta=fab.beta,
    )
    assert fab.n_restarts == 1
    sq = ref.square
    assert STANDARD['square'] == dict(
        n_queries=sq.n_queries, p_init=sq.p_init, rescale_schedule=sq.rescale_schedule
    )
    assert sq.n_restarts == 1 and sq.loss == 'margin'
    # the numbers themselves, as the paper states them
    assert (t.n_iter, t.n_target_classes, sq.n_queries, sq.p_init) == (100, 9, 5000, 0.8)
    # the plug-in's AutoAttack builds its members with exactly these
    aa = ATTACKS.build(dict(type='AutoAttack', eps=EPS))
    (_, ce), (_, apgd_t), (_, fab_t), (_, square) = aa.members
    assert [n for n, _ in aa.members] == ref.attacks_to_run
    assert (ce.steps, ce.n_restarts, ce.loss, ce.rho) == (100, 1, 'ce', 0.75)
    assert (apgd_t.steps, apgd_t.n_target_classes, apgd_t.loss) == (100, 9, 'dlr-targeted')
    assert (ce.n_iter_2, ce.n_iter_min, ce.size_decr) == (
        ref.apgd.n_iter_2,
        ref.apgd.n_iter_min,
        ref.apgd.size_decr,
    )
    assert (fab_t.steps, fab_t.alpha_max, fab_t.eta, fab_t.beta) == (100, 0.1, 1.05, 0.9)
    assert (square.n_queries, square.p_init, square.rescale_schedule) == (5000, 0.8, False)
    for it in range(0, 10001, 7):
        assert p_selection(0.8, it, 5000, False) == sq.p_selection(it)


def test_square_deltas_match_a_per_image_loop():
    g = torch.Generator().manual_seed(0)
    n, c, h, w = 6, 3, 9, 7
    for s in (1, 3, 7):
        vh = torch.randint(0, h - s + 1, (n,), generator=g)
        vw = torch.randint(0, w - s + 1, (n,), generator=g)
        signs = torch.randn(n, c, generator=g)
        expected = torch.zeros(n, c, h, w)
        for i in range(n):
            expected[i, :, vh[i] : vh[i] + s, vw[i] : vw[i] + s] = signs[i][:, None, None]
        assert torch.equal(square_deltas(vh, vw, s, signs, h, w), expected)
    # one side per sample (the look-ahead's rows are at different queries)
    sizes = torch.tensor([1, 3, 7, 2, 5, 4])
    vh = (torch.rand(n, generator=g) * (h - sizes + 1)).long()
    vw = (torch.rand(n, generator=g) * (w - sizes + 1)).long()
    expected = torch.zeros(n, c, h, w)
    for i in range(n):
        s = int(sizes[i])
        expected[i, :, vh[i] : vh[i] + s, vw[i] : vw[i] + s] = signs[i][:, None, None]
    assert torch.equal(square_deltas(vh, vw, sizes, signs, h, w), expected)


class _Calls(nn.Module):
    """Counts the model calls of an attack."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, x):
        self.calls += 1
        return self.model(x)


def test_square_lookahead_keeps_the_sequential_result(tiny):
    """Queries evaluated ahead keep exactly the proposals of the one-query loop."""
    model, x, y = tiny
    keys = sample_keys(0, torch.arange(len(x)))
    out = {}
    for ahead in (1, 3, 16):
        counted = _Calls(model)
        adv = SquareAttack(eps=EPS, n_queries=300, max_lookahead=ahead)(counted, x, y, keys=keys)
        out[ahead] = adv, counted.calls
    (seq, seq_calls), (adv, calls) = out[1], out[16]
    broken = model(seq).argmax(1) != y
    assert 0 < int(broken.sum()) < len(x)  # some break, some survive 300 queries
    for ahead in (3, 16):
        assert torch.allclose(out[ahead][0], seq, atol=1e-6), ahead
        assert torch.equal(model(out[ahead][0]).argmax(1) != y, broken)
    assert seq_calls == 302  # clean pass, initial stripes, one call per query
    assert calls < seq_calls / 3


def test_apgd_ce_is_the_reference_step_by_step(tiny, monkeypatch):
    """Given the reference's random start, APGD-CE breaks the same samples."""
    model, x, y = tiny
    ref = pyautoattack.autopgd_base.APGDAttack(
        model, n_iter=100, eps=EPS / 255.0, seed=0, device='cpu'
    )
    ref_broken = model(ref.perturb(x, y)).argmax(1) != y
    correct = model(x).argmax(1) == y
    torch.manual_seed(0)
    noise = torch.rand(x[correct].shape)
    attack = APGDAttack(eps=EPS)
    monkeypatch.setattr(attack, '_starts', lambda keys, run, shape: noise)
    broken = model(attack(model, x, y)).argmax(1) != y
    assert 5 <= int(ref_broken.sum()) < int(correct.sum())
    assert torch.equal(broken, ref_broken | ~correct)


MEMBERS = ['apgd-ce', 'apgd-t', 'fab-t', 'square']


@pytest.fixture(scope='module')
def broken_by(tiny):
    """Samples each member breaks alone: the reference's and the plug-in's."""
    model, x, y = tiny
    keys = sample_keys(0, torch.arange(len(x)))
    ref = _reference(model)
    with torch.no_grad():
        ref_adv = ref.run_standard_evaluation_individual(x, y, batch_size=len(x))
    members = dict(AutoAttack(eps=EPS).members)
    out = {}
    for name in MEMBERS:
        adv = members[name](model, x, y, keys=keys)
        assert (adv - x).abs().max() <= EPS / 255.0 + 1e-6
        with torch.no_grad():
            out[name] = (model(adv).argmax(1) != y, model(ref_adv[name][0]).argmax(1) != y)
    return out


@pytest.mark.parametrize('name', MEMBERS)
def test_each_member_breaks_what_the_reference_breaks(tiny, broken_by, name):
    model, x, y = tiny
    correct = model(x).argmax(1) == y
    broken, ref_broken = broken_by[name]
    # members attack the correct samples only
    assert torch.equal(broken & ~correct, ~correct)
    assert 0 < int((broken & correct).sum())
    # exact in its algorithm: only the random numbers differ (FAB-T has none)
    differ = int((broken != ref_broken).sum())
    assert differ <= (1 if name == 'fab-t' else 3), (name, broken, ref_broken)


def test_cascade_matches_the_reference(tiny, broken_by):
    model, x, y = tiny
    adv = AutoAttack(eps=EPS)(model, x, y, keys=sample_keys(0, torch.arange(len(x))))
    robust = model(adv).argmax(1) == y
    correct = model(x).argmax(1) == y
    # each member on the survivors: a sample survives exactly when no
    # member alone breaks it (a sample's result does not depend on its batch)
    ours = correct.clone()
    ref = correct.clone()
    for name in MEMBERS:
        ours &= ~broken_by[name][0]
        ref &= ~broken_by[name][1]
    assert torch.equal(robust, ours)
    assert 3 <= int(ref.sum()) <= len(x) - 10
    assert abs(int(robust.sum()) - int(ref.sum())) <= 2
    assert int((robust != ref).sum()) <= 4


def test_a_sample_result_does_not_depend_on_its_batch(tiny):
    model, x, y = tiny
    keys = sample_keys(3, torch.arange(len(x)))
    for attack in (
        APGDAttack(eps=EPS, steps=10),
        APGDAttack(eps=EPS, steps=10, loss='dlr-targeted'),
        FABAttack(eps=EPS, steps=10),
        SquareAttack(eps=EPS, n_queries=150),
    ):
        big = attack(model, x[:20], y[:20], keys=keys[:20])
        small = attack(model, x[5:10], y[5:10], keys=keys[5:10])
        assert torch.allclose(big[5:10], small, atol=1e-6), attack
        assert torch.equal(big, attack(model, x[:20], y[:20], keys=keys[:20]))
    # without keys the seed decides, and the call repeats
    aa = AutoAttack(eps=EPS)
    assert torch.equal(aa(model, x[:8], y[:8]), aa(model, x[:8], y[:8]))


def test_target_batch_keeps_the_broken_samples(tiny):
    model, x, y = tiny
    keys = sample_keys(0, torch.arange(len(x)))
    for cls, kw in ((APGDAttack, dict(loss='dlr-targeted')), (FABAttack, {})):
        full = cls(eps=EPS, steps=10, **kw)(model, x, y, keys=keys)
        sliced = cls(eps=EPS, steps=10, target_batch=7, **kw)(model, x, y, keys=keys)
        assert torch.equal(model(full).argmax(1) != y, model(sliced).argmax(1) != y)


def test_autoattack_restores_modes_and_respects_channels_last(tiny):
    model, x, y = tiny
    model = trained_tiny_cnn().train()
    model.conv2.eval()
    cl = model.to(memory_format=torch.channels_last)
    xc = x[:6].contiguous(memory_format=torch.channels_last)
    adv = SquareAttack(eps=EPS, n_queries=50)(cl.eval(), xc, y[:6])
    assert adv.is_contiguous(memory_format=torch.channels_last)
    cl.train()
    cl.conv2.eval()
    AutoAttack(eps=EPS)(cl, xc, y[:6])
    assert cl.training and cl.conv1.training and not cl.conv2.training


class _Layouts(nn.Module):
    """Records whether each batch the model sees is channels-last."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, x):
        self.seen.append(
            not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        )
        return self.model(x)


@pytest.mark.parametrize('channels_last', [False, True])
def test_autoattack_runs_in_the_model_layout(tiny, channels_last):
    model, x, y = tiny
    net = trained_tiny_cnn()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    spy = _Layouts(net)
    keys = sample_keys(0, torch.arange(8))
    adv = AutoAttack(eps=EPS)(spy, x[:8], y[:8], keys=keys)  # contiguous images
    assert len(spy.seen) > 10 and set(spy.seen) == {channels_last}
    assert adv.is_contiguous()  # handed back in the caller's layout
    # the layout changes the float path only (a borderline sample may flip)
    plain = AutoAttack(eps=EPS)(model, x[:8], y[:8], keys=keys)
    broken, plain_broken = model(adv).argmax(1) != y[:8], model(plain).argmax(1) != y[:8]
    assert 0 < int(plain_broken.sum()) and int((broken != plain_broken).sum()) <= 1


@pytest.mark.parametrize(
    'cfg, match',
    [
        (dict(norm='L2'), "norm='L2' is not supported"),
        (dict(version='plus'), "version='plus' is not one of"),
        (dict(eps=0.03), 'looks like a \\[0, 1\\]-scale'),
        (dict(n_classes=1), 'n_classes=1'),
        (dict(seed=-1), 'seed=-1'),
        (dict(target_batch=0), 'target_batch=0'),
    ],
)
def test_bad_arguments_fail_when_built(cfg, match):
    with pytest.raises(ValueError, match=match):
        ATTACKS.build(dict(dict(type='AutoAttack', eps=8), **cfg))


def test_n_classes_must_match_the_model(tiny):
    model, x, y = tiny
    with pytest.raises(ValueError, match='n_classes=12 but the model returns 10'):
        AutoAttack(eps=EPS, n_classes=12)(model, x[:2], y[:2])


def test_fewer_than_ten_classes_target_every_other_class():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5)).requires_grad_(False)
    x = torch.rand(6, 3, 4, 4)
    y = model(x).argmax(1)
    attack = APGDAttack(eps=EPS, steps=3, loss='dlr-targeted')
    seen = []
    run = attack._run
    attack._run = lambda model, x, y, target, noise, *rest: (
        seen.append(target) or run(model, x, y, target, noise, *rest)
    )
    attack(model, x, y)
    # 4 targets per sample, none of them its own class, all distinct
    target = torch.cat(seen).view(4, 6).t()
    assert not (target == y[:, None]).any()
    assert all(len(set(t.tolist())) == 4 for t in target)
    adv = AutoAttack(eps=EPS)(model, x, y)
    assert (adv - x).abs().max() <= EPS / 255.0 + 1e-6
