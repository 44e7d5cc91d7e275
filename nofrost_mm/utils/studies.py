"""What the demo and the MNIST study share (``tools/demo.py``,
``tools/mnist_study.py``): the repository's tools run with a log, and the
statistics of a number over seeds."""

import os
import os.path as osp
import statistics
import subprocess
import sys
from typing import Callable, List, Optional

# the repository: the tools' commands are relative to it
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def run_logged(cmd: List[str], log_path: str, show: Optional[Callable[[str], bool]] = None) -> None:
    """Run a repository command, keep its whole output in a log, show some
    lines.

    Args:
        cmd (list[str]): The tool and its arguments (``['tools/train.py',
            ...]``), run by this Python from the repository.
        log_path (str): The log file (every line, written as it comes).
        show (callable, optional): Which output lines to print (all when
            None). Defaults to None.

    Raises:
        SystemExit: When the command fails, with the command, its status,
            the log's path and its last 30 lines (a study stops there).
    """
    env = dict(os.environ, PYTHONPATH=REPO)
    # line-buffered: the log on disk follows a long run as it goes
    with open(log_path, 'w', buffering=1) as log:
        proc = subprocess.Popen(
            [sys.executable] + cmd,
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        for line in proc.stdout:
            log.write(line)
            if show is None or show(line):
                print('    ' + line.rstrip()[-150:], flush=True)
        proc.wait()
    if proc.returncode != 0:
        with open(log_path) as f:
            tail = ''.join(f.readlines()[-30:])
        raise SystemExit(f'{" ".join(cmd)} failed ({proc.returncode}); log: {log_path}\n{tail}')


def seed_stats(values: list) -> dict:
    """Statistics of one number over seeds, labeled (``summary.json``).

    Args:
        values (list): One value per seed, in the seeds' order; None where a
            run has none.

    Returns:
        dict: ``mean`` (None without values), ``std`` (sample standard
        deviation; None below two values: one seed has no spread to
        report), ``n_seeds`` (values present) and ``per_seed`` (the values).
    """
    present = [v for v in values if v is not None]
    return dict(
        mean=statistics.mean(present) if present else None,
        std=statistics.stdev(present) if len(present) > 1 else None,
        n_seeds=len(present),
        per_seed=list(values),
    )
