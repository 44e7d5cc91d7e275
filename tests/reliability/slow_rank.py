"""A test hook that makes one rank of a robust test late (a long attack shard)."""

import time

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class SlowTestRankHook(Hook):
    """Sleep ``seconds`` on rank ``rank`` before its first test batch.

    The robust test loop makes no collective between its batches, so the
    sleep stands for a shard whose attacks take that much longer.
    """

    def __init__(self, rank: int, seconds: float):
        self.rank, self.seconds = rank, seconds

    def before_test_iter(self, runner, batch_idx, data_batch=None):
        if runner.rank == self.rank and batch_idx == 0:
            time.sleep(self.seconds)
