"""Wait for every process without a collective, so no rank outlives the process-group timeout.

A collective (``all_gather``, ``barrier``) that one rank enters while another
still attacks its last batches waits in the backend: NCCL's watchdog kills
the job once the process-group timeout (``env_cfg.dist_cfg.timeout``, 1800 s)
passes, gloo raises. A robust test's ranks can be hours apart (AutoAttack's
cost depends on how many samples survive, which differs between shards).
:func:`wait_for_ranks` waits instead on a counter in the process group's
key-value store (the rendezvous store every rank already talks to): each
call there returns at once, whatever the wait, and the ranks leave together
to the collective that follows.
"""

import time
from collections import Counter

import torch.distributed as dist
from mmengine.logging import print_log

# calls per name: every rank makes the same calls, so the n-th call of a
# name meets the other ranks' n-th call under the same key
_CALLS = Counter()


def _store():
    from torch.distributed import distributed_c10d

    return distributed_c10d._get_default_store()


def wait_for_ranks(name: str, log_interval: float = 300.0, max_poll: float = 1.0) -> float:
    """Return once every process of the default group has called this.

    Without a process group (one process) it returns at once. Each rank adds
    one to a key of the group's store and polls the count (every 10 ms at
    first, then at most every ``max_poll`` seconds): no store request blocks
    and no collective is pending while a slow rank works, however long.
    A rank that waits writes a line every ``log_interval`` seconds.

    Args:
        name (str): What the ranks meet for (part of the store key; the same
            string on every rank).
        log_interval (float): Seconds between two "still waiting" lines.
            Defaults to 300.
        max_poll (float): Longest pause between two looks at the count.
            Defaults to 1.

    Returns:
        float: Seconds this rank waited.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return 0.0
    world = dist.get_world_size()
    if world == 1:
        return 0.0
    _CALLS[name] += 1
    key = f'nofrost_mm/wait_for_ranks/{name}/{_CALLS[name]}'
    store = _store()
    start = last_log = time.monotonic()
    arrived = store.add(key, 1)
    pause = 0.01
    while arrived < world:
        time.sleep(pause)
        pause = min(2 * pause, max_poll)
        arrived = store.add(key, 0)
        now = time.monotonic()
        if arrived < world and now - last_log >= log_interval:
            last_log = now
            print_log(
                f'rank {dist.get_rank()}: {name}: waiting for '
                f'{world - arrived} of {world} processes to finish '
                f'({now - start:.0f} s so far; no collective is pending, '
                'so the process-group timeout does not apply)',
                logger='current',
            )
    return time.monotonic() - start
