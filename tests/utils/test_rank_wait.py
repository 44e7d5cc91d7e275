"""wait_for_ranks: a rank far behind the others outlives no process-group timeout (gloo)."""

import multiprocessing
import os
import time
from datetime import timedelta

import torch.distributed as dist

from nofrost_mm.utils import wait_for_ranks
from tests.conftest import free_port

TIMEOUT_S = 1.0  # the collectives' process-group timeout
SLOW_S = 3.0  # how much later the slow rank gets there


def _rank(rank: int, port: int, use_wait: bool, out):
    """Rank 1 reaches the gather ``SLOW_S`` after rank 0, with or without
    ``wait_for_ranks`` first; puts what the gather gave (or its error)."""
    try:
        os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
        # a generous timeout for starting; the gather's group has the tiny one
        dist.init_process_group('gloo', rank=rank, world_size=2, timeout=timedelta(seconds=60))
        group = dist.new_group([0, 1], timeout=timedelta(seconds=TIMEOUT_S))
        if rank == 1:
            time.sleep(SLOW_S)
        waited = wait_for_ranks('test', max_poll=0.05) if use_wait else 0.0
        got = [None, None]
        dist.all_gather_object(got, f'result of rank {rank}', group=group)
        out.put((rank, 'ok', got, waited))
    except Exception as e:  # noqa: BLE001  (reported to the test)
        out.put((rank, 'error', repr(e)[:200], 0.0))
    finally:
        out.close()
        out.join_thread()  # the result is sent before the process ends
        os._exit(0)  # no group teardown after a timed-out collective


def _run_two_ranks(use_wait: bool) -> dict:
    # fork: the children need nothing imported anew (seconds on a loaded CPU)
    ctx = multiprocessing.get_context('fork')
    out = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_rank, args=(r, port, use_wait, out)) for r in (0, 1)]
    for p in procs:
        p.start()
    results = {}
    for _ in procs:
        rank, status, value, waited = out.get(timeout=120)
        results[rank] = (status, value, waited)
    for p in procs:
        p.join(30)
    return results


def test_a_slow_rank_meets_the_others_without_a_timeout():
    results = _run_two_ranks(use_wait=True)
    expected = ['result of rank 0', 'result of rank 1']
    assert results[0][:2] == ('ok', expected) and results[1][:2] == ('ok', expected)
    # rank 0 waited for rank 1, longer than the collectives' timeout
    assert results[0][2] > TIMEOUT_S and results[1][2] < SLOW_S


def test_without_it_the_fast_rank_times_out():
    # the negative control: the same gather, rank 0 waiting in the collective
    results = _run_two_ranks(use_wait=False)
    assert results[0][0] == 'error', results
    assert 'timed out' in results[0][1].lower() or 'timeout' in results[0][1].lower(), results


def test_one_process_returns_at_once():
    assert not dist.is_initialized()
    assert wait_for_ranks('single') == 0.0
