"""One line on SIGTERM / SIGINT: what a stopped run saved, and how to go on.

A scheduler's SIGTERM (pre-emption, time limit, ``scancel``) or a Ctrl-C
would otherwise end training or a robust evaluation without a word: the
``--resume`` hint is far up in the start-up log. While :func:`stop_signals`
is active, such a signal logs ``describe(signal_name)`` and then ends the
process as the signal would have (the same exit status: 143 for SIGTERM,
130 for SIGINT). A handler installed before (e.g. a cluster's requeue
handler) is called instead of ending the process; an ignored signal stays
ignored.
"""

import contextlib
import os
import shlex
import signal
import sys
import threading
from typing import Callable

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def resume_command() -> str:
    """The command line that continues this run: the same one with --resume.

    Only a plain ``python TOOL ...`` launch is written out; torchrun and
    the dist/slurm scripts start the tool with ``--launcher``, and their
    own command is not known here.
    """
    argv = list(sys.argv)
    launcher = argv[argv.index('--launcher') + 1 :][:1] if '--launcher' in argv else ['none']
    if launcher != ['none'] or not argv or not argv[0].endswith('.py'):
        return 'the same launch command with --resume added'
    # a --resume FILE or FOLDER of this command becomes a plain --resume: the
    # newest state of the work dir, which this run has just advanced
    kept = []
    for arg in argv:
        if arg.startswith('--resume='):
            continue
        if kept and kept[-1] == '--resume' and not arg.startswith('-'):
            continue
        kept.append(arg)
    if '--resume' not in kept:
        kept.append('--resume')
    return f'`python {" ".join(_shell_quote(arg) for arg in kept)}`'


def _shell_quote(arg: str) -> str:
    # shlex.quote writes a dict literal's quotes as '"'"': double quotes read
    # better and are as safe when nothing in the argument expands inside them
    if "'" in arg and not any(c in arg for c in '"$`\\!'):
        return f'"{arg}"'
    return shlex.quote(arg)


@contextlib.contextmanager
def stop_signals(describe: Callable[[str], str], log: Callable[[str], None]):
    """Within the block, SIGTERM and SIGINT log one line before ending.

    Args:
        describe (callable): Signal name (``'SIGTERM'``) -> the message.
        log (callable): Writes the message (NoFrostRunner: its logger, on
            rank 0 only).
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    owner = os.getpid()

    def handler(signum, frame):
        # forked dataloader workers inherit the handler: only this process
        # speaks
        if os.getpid() == owner:
            try:
                log(describe(signal.Signals(signum).name))
            except Exception:  # the message must never keep the process alive
                pass
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        chained = previous[signum]
        if callable(chained) and chained is not signal.default_int_handler:
            # e.g. a cluster's requeue handler: it decides what happens
            signal.signal(signum, chained)
            chained(signum, frame)
            return
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    installed = [s for s in STOP_SIGNALS if previous[s] is not signal.SIG_IGN]
    for s in installed:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s in installed:
            # None: a handler not set from Python (restored as the default)
            signal.signal(s, previous[s] if previous[s] is not None else signal.SIG_DFL)
