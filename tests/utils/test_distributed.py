"""shutdown_distributed: every rank ends with exit code 0, its output and exit handlers intact."""

import os
import subprocess
import sys

from nofrost_mm.utils import shutdown_distributed
from tests.conftest import REPO_ROOT, free_port

# a rank of a 2-process gloo job whose DDP wrapper keeps the group alive
# after destroy_process_group, as in the tools
RANK = """
import atexit, os, sys
import torch, torch.distributed as dist
from nofrost_mm.utils import shutdown_distributed
dist.init_process_group('gloo', rank=int(sys.argv[1]), world_size=2,
                        init_method='tcp://127.0.0.1:' + sys.argv[2])
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 2))
model(torch.ones(3, 4)).sum().backward()
atexit.register(lambda: open(sys.argv[3], 'w').write('exit handlers ran'))
print('results written', end='')  # no newline: only an explicit flush shows it
shutdown_distributed()
print('not reached')
"""


def test_without_a_process_group_it_returns():
    shutdown_distributed()  # one process: nothing to do, the caller goes on


def test_every_rank_exits_zero_after_its_exit_handlers(tmp_path):
    port = str(free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, '-c', RANK, str(rank), port, str(tmp_path / f'atexit{rank}')],
            cwd=REPO_ROOT,
            env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    for rank, proc in enumerate(procs):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out == 'results written', (out, err)
        assert (tmp_path / f'atexit{rank}').read_text() == 'exit handlers ran'
