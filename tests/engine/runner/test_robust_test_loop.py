"""RobustTestLoop pieces: attack configs, process-independent batches, masking guard."""

from unittest import mock

import pytest

import nofrost_mm  # noqa: F401
from nofrost_mm.engine.runner import robust_test_loop as rtl


def test_build_attacks_names_and_errors():
    built = rtl.build_attacks(
        ['FGSM', dict(type='PGD', eps=8, steps=20), dict(type='PGD', eps=8, steps=20, name='PGD-b')]
    )
    assert [name for name, _, _ in built] == ['FGSM', 'PGD-20', 'PGD-b']
    with pytest.raises(KeyError, match=r"unknown attack type 'PDG'; allowed: \["):
        rtl.build_attacks([dict(type='PDG')])
    with pytest.raises(ValueError, match="'PGD-20' is used twice"):
        rtl.build_attacks([dict(type='PGD', steps=20), dict(type='PGD', steps=20)])
    with pytest.raises(TypeError, match='must be a list of attack configs'):
        rtl.build_attacks(dict(type='PGD'))


@pytest.mark.parametrize(
    'num, batch, world', [(100, 32, 2), (12, 4, 2), (3, 4, 2), (10, 3, 3), (7, 7, 1)]
)
def test_chunk_batches_are_independent_of_the_process_count(num, batch, world):
    chunks = {}
    samplers = []
    for rank in range(world):
        with mock.patch.object(rtl, 'get_dist_info', return_value=(rank, world)):
            s = rtl._ChunkBatchSampler(num, batch)
        samplers.append(s)
        for cid, b in zip(s.chunk_ids, s.batches):
            chunks[cid] = b
    with mock.patch.object(rtl, 'get_dist_info', return_value=(0, 1)):
        one = rtl._ChunkBatchSampler(num, batch)
    # every real chunk is the same batch as with one process
    for cid, b in zip(one.chunk_ids, one.batches):
        assert chunks[cid] == b
    # equal counts per rank, as mmengine's result collection needs
    flat = [[i for b in s.batches for i in b] for s in samplers]
    assert len({len(f) for f in flat}) == 1
    assert samplers[0].total == len(flat[0]) * world
    # collected order (mmengine zips the ranks): originals before repeats
    collected = [i for group in zip(*flat) for i in group]
    first = {}
    for pos, i in enumerate(collected):
        first.setdefault(i, pos)
    assert sorted(first) == list(range(num))
    for rank, s in enumerate(samplers):
        for cid, b in zip(s.chunk_ids, s.batches):
            if cid < len(one.batches):  # a real chunk: its results are kept
                for j, i in enumerate(b):
                    pos = flat[rank].index(i) * world + rank
                    assert first[i] == pos


def test_gradient_masking_guard_names_both_numbers():
    attacks = rtl.build_attacks(
        [
            'FGSM',
            dict(type='PGD', eps=8, steps=20),
            dict(type='PGD', eps=8, steps=5),
            dict(type='AutoAttack', eps=8),
            dict(type='PGD', eps=16, steps=50),
        ]
    )
    fine = {
        'robust/FGSM': 40.0,
        'robust/PGD-20': 30.0,
        'robust/PGD-5': 33.0,
        'robust/AutoAttack': 25.0,
        'robust/PGD-50': 90.0,
    }
    assert rtl.gradient_masking_warnings(attacks, fine) == []  # other eps: not compared
    masked = dict(fine, **{'robust/AutoAttack': 31.5})
    msgs = rtl.gradient_masking_warnings(attacks, masked)
    assert len(msgs) == 1
    assert 'AutoAttack (31.50%)' in msgs[0] and 'weaker PGD-20 (30.00%)' in msgs[0]
    assert rtl.gradient_masking_warnings(attacks, masked, tolerance=2.0) == []
    masked = dict(fine, **{'robust/PGD-20': 41.0})
    msgs = rtl.gradient_masking_warnings(attacks, masked)
    assert any('PGD-20 (41.00%)' in m and 'FGSM (40.00%)' in m for m in msgs)
    assert any('PGD-20 (41.00%)' in m and 'PGD-5 (33.00%)' in m for m in msgs)
