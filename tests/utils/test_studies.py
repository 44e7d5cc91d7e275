"""nofrost_mm.utils.studies: the log of a study's command and seed statistics."""

import threading
import time

import pytest

from nofrost_mm.utils.studies import run_logged, seed_stats


def test_the_log_holds_each_line_while_the_command_still_runs(tmp_path):
    """A person following a long study's log on disk sees its progress."""
    log = tmp_path / 'run.log'
    marker = tmp_path / 'go'
    script = (
        'import os, time\n'
        "print('first line', flush=True)\n"
        f'while not os.path.exists({str(marker)!r}): time.sleep(0.05)\n'
        "print('last line')\n"
    )
    shown = []
    runner = threading.Thread(target=run_logged, args=(['-c', script], str(log), shown.append))
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while 'first line' not in (log.read_text() if log.exists() else ''):
            assert time.monotonic() < deadline, 'the first line never reached the log'
            time.sleep(0.05)
        assert 'last line' not in log.read_text()
    finally:
        marker.touch()
        runner.join(60)
    assert log.read_text().split('\n')[:2] == ['first line', 'last line']
    assert shown == ['first line\n', 'last line\n']


def test_a_failed_command_stops_the_study_with_its_log_tail(tmp_path):
    log = tmp_path / 'fail.log'
    with pytest.raises(SystemExit, match=r'failed \(3\); log: .*fail\.log\nlast words'):
        run_logged(['-c', "print('last words'); raise SystemExit(3)"], str(log), lambda _: False)


def test_seed_statistics_have_no_spread_below_two_seeds():
    assert seed_stats([40.0, None, 44.0]) == dict(
        mean=42.0, std=pytest.approx(2.8284, abs=1e-4), n_seeds=2, per_seed=[40.0, None, 44.0]
    )
    assert seed_stats([None])['mean'] is None and seed_stats([5.0])['std'] is None
