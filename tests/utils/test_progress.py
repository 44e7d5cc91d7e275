"""ProgressReporter: throttled lines, lazy values, ETA, nesting, the log file."""

import logging

import pytest
from mmengine.logging import MMLogger

from nofrost_mm.utils.progress import NO_PROGRESS, ProgressReporter, format_seconds, takes_progress


class Clock:
    """A fake monotonic clock, moved by hand."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def _reporter(interval):
    logger = logging.getLogger('test_progress')
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.handlers[:] = [Lines()]
    clock = Clock()
    return ProgressReporter(interval, logger=logger, clock=clock), clock, logger.handlers[0].lines


def test_lines_are_throttled_and_values_computed_only_when_written():
    reporter, clock, lines = _reporter(interval=10)
    calls = []

    def status():
        calls.append(clock.now)
        return 'working'

    with reporter.task('apgd-t') as task:
        for _ in range(25):  # one update a second
            task.update(1, 4, status)
            clock.now += 1
        assert len(lines) == 3  # at 0, 10 and 20 s
        assert calls == [100.0, 110.0, 120.0]  # the status of the other 22 never computed
        task.end('2 broken')  # written: the task showed progress before
    assert lines[-1] == 'apgd-t: done in 0:00:25, 2 broken'


def test_eta_scales_the_elapsed_time_by_the_work_left():
    reporter, clock, lines = _reporter(interval=0)
    with reporter.task('square') as task:
        clock.now += 10
        task.update(25, 100, 'query 1250/5000')
        clock.now += 3
        task.update(lambda: 0, lambda: 100)  # nothing done yet: no ETA
    assert lines == [
        'square: 25%, query 1250/5000; elapsed 0:00:10, ETA 0:00:30',
        'square: 0%; elapsed 0:00:13',
    ]
    assert format_seconds(3 * 3600 + 61.4) == '3:01:01'


def test_end_lines_and_the_chain_of_open_tasks():
    reporter, clock, lines = _reporter(interval=60)
    with reporter.task('robust test', chain=False) as root:
        with reporter.task('batch 2/3'), reporter.task('AutoAttack'):
            with reporter.task('apgd-ce') as member:
                member.update(5, 100, 'step 5/100')  # the first line is due
                clock.now += 1
                member.end('3 of 8 samples broken', always=True)
            with reporter.task('apgd-t') as quiet:
                quiet.update(1, 100, 'step 1/100')  # not due
                quiet.end('nothing broken')  # not due, no line shown before
        root.end('done', always=True)
    assert lines == [
        'batch 2/3 > AutoAttack > apgd-ce: 5%, step 5/100',
        'batch 2/3 > AutoAttack > apgd-ce: done in 0:00:01, 3 of 8 samples broken',
        'robust test: done in 0:00:01, done',
    ]
    assert reporter.stack == []


def test_a_disabled_reporter_computes_and_writes_nothing():
    def fail():
        raise AssertionError('called')

    for reporter in (NO_PROGRESS, ProgressReporter(None)):
        assert not reporter.enabled
        with reporter.task('x') as task:
            task.update(fail, fail, fail)
            task.end(fail, always=True)


@pytest.mark.parametrize('interval', [-1, 'often', True, float('nan')])
def test_bad_intervals_are_refused(interval):
    with pytest.raises(ValueError, match='progress interval must be None or a number'):
        ProgressReporter(interval)


def test_lines_reach_the_current_mmengine_logger_and_its_file(tmp_path):
    log_file = tmp_path / 'run.log'
    MMLogger.get_instance('test_progress_file', log_file=str(log_file))
    reporter = ProgressReporter(0)
    with reporter.task('apgd-ce') as task:
        task.update(1, 2, 'step 1/2')
    for handler in MMLogger.get_current_instance().handlers:
        handler.flush()
    assert 'apgd-ce: 50%, step 1/2' in log_file.read_text()


def test_takes_progress():
    def with_progress(model, images, labels, keys=None, progress=None):
        pass

    assert takes_progress(with_progress)
    assert not takes_progress(lambda model, images, labels: None)
    assert not takes_progress(len)


def test_a_log_level_above_info_does_not_hide_progress(capsys):
    logger = MMLogger.get_instance('test_progress_quiet', log_level='WARNING')
    assert MMLogger.get_current_instance() is logger
    with ProgressReporter(0).task('PGD-5') as task:
        task.end('3/4 survive', always=True)
    assert 'PGD-5: done in 0:00:00, 3/4 survive' in capsys.readouterr().out
    # at INFO the logger's console shows it: not printed twice
    MMLogger.get_instance('test_progress_loud', log_level='INFO')
    with ProgressReporter(0).task('PGD-5') as task:
        task.end('3/4 survive', always=True)
    assert capsys.readouterr().out.count('3/4 survive') == 1
