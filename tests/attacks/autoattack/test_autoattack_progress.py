"""Progress lines of AutoAttack and its members: what they say, that they
change no result, and that they add no host sync per step."""

import functools
import itertools
import logging
import re

import pytest
import torch

from nofrost_mm.attacks import APGDAttack, AutoAttack, FABAttack, SquareAttack
from nofrost_mm.utils.progress import ProgressReporter
from nofrost_mm.utils.sample_random import sample_keys
from ..toy import digits_8x8
from .tiny_cnn import trained_tiny_cnn

EPS = 12  # /255: APGD-CE breaks about half the correct samples, the rest reach Square
MEMBERS = ('apgd-ce', 'apgd-t', 'fab-t', 'square')


@pytest.fixture(scope='module')
def tiny():
    x, y = digits_8x8(48, 'test')
    return trained_tiny_cnn(), x, y, sample_keys(0, torch.arange(len(x)))


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def _reporter(interval=0, clock=None):
    """A reporter writing to a list; by default a clock one second further
    at every reading (so every line has an ETA)."""
    handler = _Lines()
    logger = logging.getLogger(f'autoattack_progress_{id(handler)}')
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    clock = clock or functools.partial(next, itertools.count())
    return ProgressReporter(interval, logger=logger, clock=clock), handler.lines


PROGRESS = re.compile(
    r'^(?P<member>[a-z-]+): (?P<pct>\d+)%, (?P<where>[^:]+): '
    r'(?P<broken>\d+) of (?P<of>\d+) samples broken, (?P<left>\d+) '
    r'still robust; elapsed \d+:\d\d:\d\d, ETA \d+:\d\d:\d\d$'
)
END = re.compile(
    r'^(?P<member>[a-z-]+): done in \d+:\d\d:\d\d, (?P<broken>\d+) of '
    r'(?P<of>\d+) samples broken, (?P<left>\d+) robust$'
)


def test_every_member_reports_steps_samples_and_eta_and_no_result_changes(tiny):
    model, x, y, keys = tiny
    silent = AutoAttack(eps=EPS)(model, x, y, keys=keys)
    # a line about every 20 updates (the clock moves at each reading)
    reporter, lines = _reporter(interval=20)
    adv = AutoAttack(eps=EPS)(model, x, y, keys=keys, progress=reporter)
    assert torch.equal(adv, silent)

    progress = [m.groupdict() for m in map(PROGRESS.match, lines) if m]
    ends = [m.groupdict() for m in map(END.match, lines) if m]
    assert len(progress) + len(ends) == len(lines), [
        line for line in lines if not (PROGRESS.match(line) or END.match(line))
    ]
    # every member ran (EPS leaves survivors to the end) and ended once, in order
    assert [e['member'] for e in ends] == list(MEMBERS)
    by_member = {m: [p for p in progress if p['member'] == m] for m in MEMBERS}
    # where a member is: its step (and targets, all in one pass), Square's query
    where = {
        'apgd-ce': r'step \d+/100',
        'apgd-t': r'step \d+/100, targets 1-9',
        'fab-t': r'step \d+/100, targets 1-9',
        'square': r'query \d+/5000 \(slowest sample\)',
    }
    for member, pattern in where.items():
        assert all(re.fullmatch(pattern, p['where']) for p in by_member[member])
    # a member attacks the survivors of the one before; the last one's
    # survivors are AutoAttack's robust samples
    correct = int((model(x).argmax(1) == y).sum())
    robust = int((model(adv).argmax(1) == y).sum())
    attacked = correct
    for end in ends:
        assert int(end['of']) == attacked
        assert int(end['broken']) + int(end['left']) == attacked
        for p in by_member[end['member']]:
            assert int(p['of']) == attacked
            assert int(p['broken']) + int(p['left']) == attacked
            assert int(p['broken']) <= int(end['broken'])
            assert 0 <= int(p['pct']) <= 100
        attacked = int(end['left'])
    assert attacked == robust and 0 < robust < correct
    # progress within a member only grows
    for member in MEMBERS:
        pcts = [int(p['pct']) for p in by_member[member]]
        assert pcts == sorted(pcts) and len(pcts) >= 2


@pytest.mark.parametrize(
    'attack',
    [
        APGDAttack(eps=EPS, steps=4, loss='dlr-targeted', target_batch=25),
        FABAttack(eps=EPS, steps=4, target_batch=25),
    ],
)
def test_targets_run_in_slices_name_their_targets_and_pass(tiny, attack):
    model, x, y, keys = tiny
    x, y, keys = x[:20], y[:20], keys[:20]
    silent = attack(model, x, y, keys=keys)
    reporter, lines = _reporter()
    assert torch.equal(attack(model, x, y, keys=keys, progress=reporter), silent)
    m = int((model(x).argmax(1) == y).sum())
    passes = -(-9 * m // 25)
    where = [PROGRESS.match(line)['where'] for line in lines if PROGRESS.match(line)]
    # the first pass holds the first 25 rows (targets outer, m rows each)
    assert where[0] == f'step 1/4, targets 1-{(25 - 1) // m + 1} (pass 1/{passes})'
    assert re.fullmatch(rf'step \d/4, targets? \d(-\d)? \(pass \d+/{passes}\)', where[-1])
    assert END.match(lines[-1])


def _count_syncs(monkeypatch):
    """Count the Python-level host syncs (bool, int, index, item, tolist)."""
    counts = [0]
    for name in ('__bool__', '__int__', '__index__', 'item', 'tolist'):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            counts[0] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts


@pytest.mark.parametrize(
    'make',
    [
        lambda n: APGDAttack(eps=EPS, steps=n),
        lambda n: FABAttack(eps=EPS, steps=n),
        lambda n: SquareAttack(eps=EPS, n_queries=20 * n),
    ],
    ids=['apgd', 'fab', 'square'],
)
def test_progress_adds_no_host_sync_per_step(tiny, monkeypatch, make):
    model, x, y, keys = tiny
    x, y, keys = x[:16], y[:16], keys[:16]
    counts = _count_syncs(monkeypatch)
    extra = []
    for steps in (5, 10):
        before = counts[0]
        silent = make(steps)(model, x, y, keys=keys)
        plain = counts[0] - before
        # an hour between lines: the first update and the end line are written
        reporter, lines = _reporter(interval=3600.0, clock=lambda: 0.0)
        before = counts[0]
        assert torch.equal(make(steps)(model, x, y, keys=keys, progress=reporter), silent)
        extra.append(counts[0] - before - plain)
        assert len(lines) == 2
    # what a written line costs, whatever the number of steps
    assert extra[0] == extra[1] and 0 < extra[0] <= 8
