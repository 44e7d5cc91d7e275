"""Process-group clean-up shared by the command-line tools."""

import atexit
import os
import sys

import torch.distributed as dist


def shutdown_distributed() -> None:
    """End a distributed tool's process once every rank's work is done.

    Waits for every rank (a barrier), destroys the process group, runs the
    interpreter's exit handlers (logging flushes and closes its files,
    multiprocessing ends its workers), flushes stdout and stderr, and then
    ends the process with ``os._exit(0)``. Without a process group (one
    process) it returns and the process exits as usual.

    ``destroy_process_group`` drops only torch's own references: the
    model's DistributedDataParallel wrapper still holds the gloo group, so
    its worker and transport threads stay alive through interpreter
    finalization and C++ static destruction, and a rank that raced with
    them aborted (SIGABRT) after it had written its results, failing a run
    that finished. ``os._exit`` skips that teardown; nothing of the run is
    left unwritten by then (checkpoints and ``--out`` files are written and
    closed before).

    Tools call this last and only after success: a rank that raises never
    gets here, exits non-zero and fails the launcher's command (torchrun
    then stops the other ranks, waiting in the barrier).
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    dist.barrier()
    dist.destroy_process_group()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or a broken pipe
            pass
    os._exit(0)
