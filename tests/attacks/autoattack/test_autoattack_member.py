"""What AutoAttack's members share: the call around ``perturb``, the
per-sample keys, rows run in slices where a broken sample leaves, and the
step loop's batch of rows a sample leaves with all its rows."""

import pytest
import torch
import torch.nn as nn

from nofrost_mm.attacks import APGDAttack, FABAttack, SquareAttack
from nofrost_mm.attacks.autoattack.autoattack_member import AutoAttackMember, RowBatch, run_rows
from nofrost_mm.utils.progress import NO_PROGRESS, ProgressReporter


class RecordingMember(AutoAttackMember):
    """Returns the images shifted by 0.5 and records what perturb got."""

    def __init__(self, seed=0):
        self.seed = seed
        self.calls = []

    def perturb(self, model, images, labels, keys, clean_logits, progress=None):
        self.calls.append(
            dict(keys=keys, logits=clean_logits, grad=images.requires_grad, progress=progress)
        )
        return images + 0.5, torch.ones(len(images), dtype=torch.bool)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 3))


def test_the_call_hands_perturb_clean_logits_and_seeded_keys():
    model, images, labels = _model(), torch.rand(4, 3, 2, 2), torch.tensor([0, 1, 2, 0])
    member = RecordingMember(seed=3)
    adv = member(model, images, labels)
    assert torch.equal(adv, images + 0.5)
    (first,) = member.calls
    with torch.no_grad():
        assert torch.equal(first['logits'], model(images).float())
    assert first['keys'].shape == (4,) and not first['grad']
    # no keys given: the same keys from the same seed, other keys from another
    member(model, images, labels)
    assert torch.equal(member.calls[1]['keys'], first['keys'])
    other = RecordingMember(seed=4)
    other(model, images, labels)
    assert not torch.equal(other.calls[0]['keys'], first['keys'])
    # given keys are used as they are
    member(model, images, labels, keys=torch.arange(4))
    assert member.calls[2]['keys'].tolist() == [0, 1, 2, 3]
    # the progress reporter is handed on (none given: the silent one)
    assert first['progress'] is NO_PROGRESS
    reporter = ProgressReporter(30)
    member(model, images, labels, progress=reporter)
    assert member.calls[3]['progress'] is reporter


@pytest.mark.parametrize(
    'images, labels, message',
    [
        (
            torch.zeros(2, 3, 2, 2, dtype=torch.uint8),
            torch.zeros(2, dtype=torch.long),
            'images must be a float tensor',
        ),
        (torch.rand(2, 12), torch.zeros(2, dtype=torch.long), 'images must be a float tensor'),
        (torch.rand(2, 3, 2, 2), torch.zeros(3, dtype=torch.long), 'labels must be (N,)'),
    ],
)
def test_bad_inputs_name_the_member(images, labels, message):
    with pytest.raises(
        ValueError, match='RecordingMember: ' + message.replace('(', r'\(').replace(')', r'\)')
    ):
        RecordingMember()(_model(), images, labels)


def test_keys_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match=r'keys must have shape \(2,\)'):
        RecordingMember()(
            _model(), torch.rand(2, 3, 2, 2), torch.zeros(2, dtype=torch.long), keys=torch.arange(3)
        )


def test_every_member_is_one():
    assert all(issubclass(cls, AutoAttackMember) for cls in (APGDAttack, FABAttack, SquareAttack))


def test_run_rows_keeps_the_first_breaking_row_and_skips_a_broken_group():
    # 3 groups (samples) x 2 rows (restarts), the reference's order: restart
    # outer, sample inner; slices of 2 rows
    groups = torch.tensor([0, 1, 2, 0, 1, 2])
    breaks = {0: False, 1: True, 2: False, 3: True, 4: True, 5: False}
    seen = []

    def attack(idx):
        seen.extend(idx.tolist())
        broken = torch.tensor([breaks[i] for i in idx.tolist()])
        return broken, idx.float()[:, None]  # each row's "image" is its index

    broken, adv = run_rows(6, groups, 2, attack, 3, torch.full((3, 1), -1.0))
    assert broken.tolist() == [True, True, False]
    # group 1 broke at row 1, so its row 4 never ran; group 0 at row 3
    assert seen == [0, 1, 2, 3, 5]
    assert adv[:, 0].tolist() == [3.0, 1.0, -1.0]


def test_a_row_batch_drops_a_broken_sample_with_all_its_rows():
    # 2 samples (groups) x 2 rows; rows hold their index as their image
    groups = torch.tensor([0, 1, 0, 1])
    images = torch.arange(4.0)[:, None, None, None]
    rows = RowBatch(groups, images, step=torch.arange(4) * 10, target=None)
    assert rows.compact(0) and len(rows.alive) == 4  # none stopped yet
    # row 2 (sample 0) breaks at the image 7
    rows.leave(torch.tensor([False, False, True, False]), torch.full_like(images, 7.0))
    assert rows.active.tolist() == [False, True, False, True]
    assert rows.broken.tolist() == [False, False, True, False]
    assert rows.adv.flatten().tolist() == [0.0, 1.0, 7.0, 3.0]
    # dropped at the next compaction step only, from every per-row tensor
    assert rows.compact(1) and len(rows.alive) == 4
    assert rows.compact(2)
    assert rows.alive.tolist() == [1, 3] and rows.step.tolist() == [10, 30]
    assert rows.active.all() and rows.target is None
    # results stay per row of the start; sample 1 breaks at its row 3
    rows.leave(torch.tensor([False, True]), torch.full((2, 1, 1, 1), 9.0))
    assert rows.broken.tolist() == [False, False, True, True]
    assert rows.adv.flatten().tolist() == [0.0, 1.0, 7.0, 9.0]
    assert not rows.compact(4) and len(rows.alive) == 0
