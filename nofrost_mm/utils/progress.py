"""Readable, throttled progress lines of long work (attacks, robust evaluation).

One AutoAttack batch can run for minutes on a CPU and for hours on
ImageNet; a person watching must be able to tell a working job from a hung
one. :class:`ProgressReporter` writes lines such as (one line)::

    batch 1/3 > AutoAttack > apgd-t: 41%, step 41/100, targets 1-9: 2 of 15
    samples broken, 13 still robust; elapsed 0:00:52, ETA 0:01:15

through mmengine's logger (the console and the run's log file), at most one
every ``interval`` seconds, plus the end lines a task asks for. Work is a
stack of tasks (``with reporter.task(title) as task``); a line names the
tasks it is nested in. What a line says is computed only when the line is
written: callers pass callables for what needs a host-device sync (a count
of broken samples), so an attack step costs none.

Example:
    >>> reporter = ProgressReporter(interval=30)
    >>> with reporter.task('apgd-ce') as task:
    ...     for i in range(steps):
    ...         ...  # one step
    ...         task.update(i + 1, steps, status=lambda: f'step {i + 1}')
    ...     task.end(lambda: f'{int(broken.sum())} broken', always=True)
"""

import inspect
import logging
import math
import time
from contextlib import contextmanager
from datetime import timedelta
from typing import Callable, Iterator, List, Optional, Union

from mmengine.dist import get_dist_info
from mmengine.logging import MMLogger, print_log

# a value, or a callable computing it when a line is written
Lazy = Union[str, float, Callable[[], Union[str, float]]]


def _value(x):
    return x() if callable(x) else x


def _console_shows_info(logger: logging.Logger) -> bool:
    """Whether INFO records of ``logger`` reach the console."""
    # a FileHandler is a StreamHandler too: the console's is the plain one
    return logger.isEnabledFor(logging.INFO) and any(
        type(h) is logging.StreamHandler and h.level <= logging.INFO for h in logger.handlers
    )


def format_seconds(seconds: float) -> str:
    """``h:mm:ss`` (mmengine's ETA format), e.g. ``0:01:15``."""
    return str(timedelta(seconds=int(round(max(seconds, 0.0)))))


class ProgressTask:
    """One task of a :class:`ProgressReporter`: its title, start and lines.

    Made by :meth:`ProgressReporter.task`; see there.
    """

    def __init__(self, reporter: 'ProgressReporter', title: str, chain: bool):
        self.reporter, self.title, self.chain = reporter, title, chain
        self.start = reporter.clock()
        self.written = False

    def elapsed(self) -> float:
        return self.reporter.clock() - self.start

    def update(self, done: Lazy = 0, total: Optional[Lazy] = None, status: Lazy = '') -> None:
        """A line if one is due: ``title: pct, status; elapsed, ETA``.

        Args:
            done (float | callable): Work done (any unit). Defaults to 0.
            total (float | callable, optional): All the work, in the unit
                of ``done``; with it the line has a percentage and an ETA
                (the elapsed time scaled by the work left). Defaults to None.
            status (str | callable): What the line says. Defaults to ''.
        """
        if not self.reporter.due():
            return
        done, total = _value(done), _value(total)
        parts = []
        eta = None
        elapsed = self.elapsed()
        if total:
            done = min(max(done, 0), total)
            parts.append(f'{math.floor(100 * done / total)}%')
            if done > 0 and elapsed > 0:
                eta = elapsed * (total - done) / done
        status = _value(status)
        if status:
            parts.append(str(status))
        # no timing on a line written as the task starts
        timing = [f'elapsed {format_seconds(elapsed)}'] if elapsed >= 0.5 or eta is not None else []
        if eta is not None:
            timing.append(f'ETA {format_seconds(eta)}')
        self.reporter.write(self, '; '.join(filter(None, [', '.join(parts), ', '.join(timing)])))

    def end(self, status: Lazy = '', always: bool = False) -> None:
        """``title: done in h:mm:ss, status``: written when ``always``, when
        this task wrote a line before (its progress was shown, so is its
        end), or when a line is due."""
        if not (always or self.written or self.reporter.due()):
            return
        status = _value(status)
        self.reporter.write(
            self, f'done in {format_seconds(self.elapsed())}' + (f', {status}' if status else '')
        )


class _NoTask:
    """The task of a disabled reporter: nothing is computed or written."""

    title = ''

    def update(self, *args, **kwargs) -> None:
        pass

    def end(self, *args, **kwargs) -> None:
        pass


NO_TASK = _NoTask()


class ProgressReporter:
    """Throttled progress lines of nested tasks, through mmengine's logger.

    Args:
        interval (float, optional): At least this many seconds between two
            progress lines (0: a line at every update); a task's end line
            is written whatever the interval when it asks for it. None
            disables the reporter: no line, and no callable given to it is
            called. Defaults to 30.
        logger (str | logging.Logger): Where lines go: 'current' is
            mmengine's current logger (the console and the run's log file;
            where its level hides INFO from the console, as the robustness
            report's default WARNING does, rank 0 prints them too), None
            prints. Defaults to 'current'.
        clock (callable): Seconds on a monotonic clock. Defaults to
            ``time.monotonic``.

    Example:
        >>> reporter = ProgressReporter(interval=30)
        >>> with reporter.task('batch 3/40'), reporter.task('AutoAttack') as t:
        ...     t.update(status='started')  # 'batch 3/40 > AutoAttack: started; ...'
    """

    def __init__(
        self,
        interval: Optional[float] = 30.0,
        logger: Union[str, logging.Logger, None] = 'current',
        clock: Callable[[], float] = time.monotonic,
    ):
        if interval is not None and (
            isinstance(interval, bool)
            or not isinstance(interval, (int, float))
            or not interval >= 0
        ):
            raise ValueError(
                f'progress interval must be None or a number of seconds >= 0, got {interval!r}'
            )
        self.interval, self.logger, self.clock = interval, logger, clock
        self.last_line = -math.inf
        self.stack: List[ProgressTask] = []

    @property
    def enabled(self) -> bool:
        return self.interval is not None

    def due(self) -> bool:
        """Whether a progress line may be written now (the throttle)."""
        return self.enabled and self.clock() - self.last_line >= self.interval

    @contextmanager
    def task(self, title: str, chain: bool = True) -> Iterator[ProgressTask]:
        """A task nested in the open ones, for the duration of the block.

        Args:
            title (str): Its name in lines (``batch 3/40``, ``apgd-t``).
            chain (bool): Name it in the lines of the tasks nested in it
                too. Defaults to True.
        """
        if not self.enabled:
            yield NO_TASK
            return
        task = ProgressTask(self, title, chain)
        self.stack.append(task)
        try:
            yield task
        finally:
            self.stack.remove(task)

    def write(self, task: ProgressTask, text: str) -> None:
        """Write ``text`` as ``task``'s line, prefixed by the open tasks."""
        names = (
            [t.title for t in self.stack[: self.stack.index(task)] if t.chain and t.title]
            if task in self.stack
            else []
        )
        line = ' > '.join(names + [task.title]) + ': ' + text
        print_log(line, logger=self.logger)
        if (
            self.logger == 'current'
            and get_dist_info()[0] == 0
            and not _console_shows_info(MMLogger.get_current_instance())
        ):
            # a log level meant to quiet the runner does not hide progress
            print(line, flush=True)
        task.written = True
        self.last_line = self.clock()


# a reporter that writes nothing (the default of the attacks)
NO_PROGRESS = ProgressReporter(interval=None)


def takes_progress(fn: Callable) -> bool:
    """Whether ``fn`` (an attack) accepts a ``progress`` reporter."""
    try:
        return 'progress' in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
