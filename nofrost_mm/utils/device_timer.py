"""Wall time of work queued on a device, read without stalling it."""

import time
from typing import Optional

import torch


class DeviceTimer:
    """Times work on ``device`` between :meth:`start` and :meth:`stop`.

    On CUDA it records a pair of CUDA events (nothing waits); reading
    :attr:`seconds` waits for the end event, so read it when logging. On
    other devices, whose work runs as it is issued, it reads the host clock.

    Args:
        device (torch.device | str): Where the timed work runs.
    """

    def __init__(self, device):
        self.cuda = torch.device(device).type == 'cuda'
        self._start = self._end = None
        self._seconds: Optional[float] = None

    def start(self) -> 'DeviceTimer':
        if self.cuda:
            self._start = torch.cuda.Event(enable_timing=True)
            self._start.record()
        else:
            self._start = time.perf_counter()
        return self

    def stop(self) -> 'DeviceTimer':
        if self.cuda:
            self._end = torch.cuda.Event(enable_timing=True)
            self._end.record()
        else:
            self._seconds = time.perf_counter() - self._start
        return self

    @property
    def seconds(self) -> float:
        """Seconds from start to stop (on CUDA: waits for the stop event)."""
        if self._seconds is None and self.cuda:
            if not self._end.query():  # done once a later event was waited for
                self._end.synchronize()
            self._seconds = self._start.elapsed_time(self._end) / 1e3
        return self._seconds or 0.0
