"""tools/test.py and tools/dist_test.sh: a SIGKILLed evaluation resumes, --cascade."""

import json

import pytest

from tests.conftest import REPO_ROOT, free_port, run_tool
from tests.conftest import STANDARD_DIGITS_CONFIG as CONFIG
from tests.tools.user_path_runs import run_main


@pytest.fixture(scope='module')
def checkpoint(standard_digits_checkpoint):
    return standard_digits_checkpoint


def _accuracies(res):
    return {k: v for k, v in res.items() if '/time_s/' not in k and k != 'warnings'}


# 32 samples in 4 chunks: 2 per process with 2 processes. PGD-10's random
# start draws from each chunk's seeded RNG (a resumed chunk must redraw the
# same), AutoAttack keeps its own seed; at eps 64 it breaks every sample
# within APGD-CE (at eps 24 the 2 survivors of 32 cost 64 s of Square)
RESUME_ARGS = [
    '--num-samples',
    '32',
    '--attacks',
    "{'type': 'PGDAttack', 'eps': 8, 'steps': 10}",
    "{'type': 'AutoAttack', 'eps': 64, 'version': 'standard'}",
    '--cfg-options',
    'test_dataloader.batch_size=8',
]


@pytest.fixture(scope='module')
def uninterrupted(checkpoint, tmp_path_factory):
    """The evaluation's numbers without a kill (tools/test.py's main in this
    process; the killed and resumed ones below are the command itself)."""
    out = tmp_path_factory.mktemp('uninterrupted') / 'results.json'
    with pytest.MonkeyPatch.context() as monkeypatch:
        run_main(
            monkeypatch,
            'tools/test.py',
            [CONFIG, checkpoint, '--work-dir', out.parent, '--out', out, *RESUME_ARGS],
        )
    return json.loads(out.read_text())


@pytest.mark.parametrize('procs', [1, 2])
def test_sigkilled_evaluation_resumes_to_the_same_numbers(
    checkpoint, uninterrupted, tmp_path, procs
):
    from tests.reliability.helpers import write_config

    killing = write_config(
        tmp_path / 'killing.py',
        base=REPO_ROOT / CONFIG,
        body=("custom_hooks = [dict(type='KillAtTestIterHook', at_batch=1)]\n"),
    )
    launch = ['tools/test.py'] if procs == 1 else ['bash', 'tools/dist_test.sh']
    tail = [] if procs == 1 else [procs]
    work_dir, out = tmp_path / 'eval', tmp_path / 'resumed.json'
    proc = run_tool(
        [*launch, killing, checkpoint, *tail, '--work-dir', work_dir, '--out', out, *RESUME_ARGS],
        env={'PORT': str(free_port())},
        check=False,
    )
    assert proc.returncode != 0 and not out.exists()
    state = list(work_dir.glob('*/robust_eval_state'))
    assert len(state) == 1
    # batch 0 of every process was saved, batch 1 (killed) was not
    assert len(list(state[0].glob('chunk_*.pth'))) == procs
    # (another evaluation's --resume is refused: tests/engine/runner/test_evaluation_state.py)
    proc = run_tool(
        [
            *launch,
            CONFIG,
            checkpoint,
            *tail,
            '--work-dir',
            work_dir,
            '--out',
            out,
            '--resume',
            *RESUME_ARGS,
        ],
        env={'PORT': str(free_port())},
    )
    assert f'1 of {4 // procs} batches of this process read from' in proc.stdout + proc.stderr
    assert _accuracies(json.loads(out.read_text())) == _accuracies(uninterrupted)
    assert (state[0] / 'COMPLETE').exists()


def test_cascade_keeps_the_worst_case_and_reports_cumulative_columns(
    checkpoint, tmp_path, monkeypatch
):
    # attacks whose result for a sample does not depend on the rest of its
    # batch (no random start): the cascade must give exactly the worst case
    attacks = [
        '--num-samples',
        '40',
        '--attacks',
        'FGSM',
        "{'type': 'PGDAttack', 'eps': 8, 'steps': 10, 'random_start': False}",
        "{'type': 'PGDAttack', 'eps': 8, 'steps': 10, 'loss': 'cw', "
        "'random_start': False, 'name': 'CW-10'}",
    ]
    plain, cascade = tmp_path / 'plain.json', tmp_path / 'cascade.json'
    # in this process (tools/test.py's main): the subprocess runs are above
    common = [CONFIG, checkpoint, '--work-dir', tmp_path, *attacks]
    run_main(monkeypatch, 'tools/test.py', [*common, '--out', plain])
    run_main(monkeypatch, 'tools/test.py', [*common, '--out', cascade, '--cascade'])
    plain, cascade = json.loads(plain.read_text()), json.loads(cascade.read_text())
    assert cascade['robust/worst_case'] == plain['robust/worst_case']
    first = cascade['robust/FGSM']
    second = cascade['robust/FGSM+PGDAttack-10']
    third = cascade['robust/FGSM+PGDAttack-10+CW-10']
    assert first == plain['robust/FGSM'] and first >= second >= third
    assert third == plain['robust/worst_case']
    assert 'robust/PGDAttack-10' not in cascade
