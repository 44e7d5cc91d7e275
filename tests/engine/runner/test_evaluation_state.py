"""EvaluationState: per-chunk files, the fingerprint check, what --resume picks."""

import pytest
import torch

from nofrost_mm.engine.runner.evaluation_state import (
    EvaluationState,
    describe_differences,
    find_resumable_state,
)

FP = dict(
    attacks=[dict(type='PGD', eps=8)],
    subset=dict(num_samples=32, seed=0),
    world_size=1,
    checkpoint_sha256='ab12',
)


def test_chunks_round_trip_and_nothing_is_overwritten(tmp_path):
    state = EvaluationState(str(tmp_path / 's'), FP, resume=False)
    assert state.load(3) is None
    results = [
        dict(
            sample_idx=3,
            robust_correct=dict(clean=True, PGD=False),
            pred_score=torch.tensor([0.1, 0.9]),
        )
    ]
    state.save(3, results)
    back = EvaluationState(str(tmp_path / 's'), FP, resume=True)
    assert back.resumed
    loaded = back.load(3)
    assert loaded[0]['robust_correct'] == results[0]['robust_correct']
    assert torch.equal(loaded[0]['pred_score'], results[0]['pred_score'])
    assert not list((tmp_path / 's').glob('.*partial'))
    with pytest.raises(FileExistsError, match='never overwritten'):
        EvaluationState(str(tmp_path / 's'), FP, resume=False)


def test_a_different_evaluation_is_refused_naming_the_keys(tmp_path):
    EvaluationState(str(tmp_path / 's'), FP, resume=False)
    other = dict(FP, attacks=[dict(type='PGD', eps=4)], world_size=2)
    with pytest.raises(ValueError, match='differs from this one') as err:
        EvaluationState(str(tmp_path / 's'), other, resume=True)
    msg = str(err.value)
    assert '  attacks[0].eps: saved 8, this run 4' in msg
    assert '  world_size: saved 1, this run 2' in msg
    assert 'subset' not in msg and 'checkpoint' not in msg


def test_differences_name_the_leaf_key_and_keep_long_values_whole():
    long_a, long_b = 'x' * 500 + 'a', 'x' * 500 + 'b'
    saved = dict(
        config=dict(test_dataloader=dict(dataset=dict(ann_file=long_a)), model=dict(type='M')),
        attacks=[1, 2],
    )
    current = dict(
        config=dict(
            test_dataloader=dict(dataset=dict(ann_file=long_b)), model=dict(type='M'), extra=3
        ),
        attacks=[1, 2, 3],
    )
    assert describe_differences(saved, current) == [
        '  attacks: saved [1, 2], this run [1, 2, 3]',
        '  config.extra: saved no such key, this run 3',
        f'  config.test_dataloader.dataset.ann_file: saved "{long_a}", this run "{long_b}"',
    ]


def test_resume_picks_the_matching_state_else_the_newest_unfinished(tmp_path):
    work = tmp_path / 'work'
    old = EvaluationState(str(work / 'run1' / 'robust_eval_state'), FP, resume=False)
    old.mark_complete()
    other = dict(FP, world_size=2)
    EvaluationState(str(work / 'run2' / 'robust_eval_state'), other, resume=False)
    # finished and matching wins over a newer unfinished one of another run
    assert find_resumable_state(str(work), FP).endswith('run1/robust_eval_state')
    # nothing matches: the unfinished one, whose check then names the difference
    third = dict(FP, world_size=4)
    assert find_resumable_state(str(work), third).endswith('run2/robust_eval_state')
    assert find_resumable_state(str(tmp_path / 'empty'), FP) is None


def test_resume_after_a_finished_other_run_says_what_differs(tmp_path):
    # --resume never starts a new full run silently while states exist
    work = tmp_path / 'work'
    EvaluationState(str(work / 'run1' / 'robust_eval_state'), FP, resume=False).mark_complete()
    other = dict(FP, attacks=[dict(type='PGD', eps=16)])
    directory = find_resumable_state(str(work), other)
    assert directory.endswith('run1/robust_eval_state')
    with pytest.raises(ValueError) as err:
        EvaluationState(directory, other, resume=True)
    assert 'differs from this one' in str(err.value)
    assert '  attacks[0].eps: saved 8, this run 16' in str(err.value)
