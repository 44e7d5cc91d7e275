"""Training scalars logged from the device without waiting for it."""

from typing import Callable, Union

import torch
from mmengine.logging import HistoryBuffer, MessageHub


class DeviceHistoryBuffer(HistoryBuffer):
    """mmengine's ``HistoryBuffer`` that also takes device values.

    An update may be a 0-dim tensor on any device or a callable returning a
    float (e.g. the ratio of two CUDA event timings); both are kept as they
    are and read on the host together, in one sync, when a statistic is
    first asked for: the logger's iterations, not every training
    iteration. Copies and pickles (checkpoints) are plain ``HistoryBuffer``
    objects.

    Args:
        log_history (Sequence): Host values so far. Defaults to [].
        count_history (Sequence): Their counts. Defaults to [].
        max_length (int): As ``HistoryBuffer``. Defaults to 1000000.
    """

    def __init__(self, log_history=(), count_history=(), max_length: int = 1000000):
        super().__init__(list(log_history), list(count_history), max_length)
        self._pending = []

    def update(
        self, log_val: Union[int, float, torch.Tensor, Callable[[], float]], count: int = 1
    ) -> None:
        if isinstance(log_val, torch.Tensor) or callable(log_val):
            self._pending.append((log_val, count))
            return
        self._read()
        super().update(log_val, count)

    def _read(self) -> None:
        """The pending values on the host, in their order (one sync)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        tensors = [v for v, _ in pending if isinstance(v, torch.Tensor)]
        host = iter(
            torch.stack(
                [t.detach().reshape(()).float().to(tensors[0].device) for t in tensors]
            ).tolist()
            if tensors
            else ()
        )
        # callables newest first: waiting for the last timing completes the
        # earlier ones (one stream)
        called = {
            i: float(v())
            for i, (v, _) in reversed(list(enumerate(pending)))
            if not isinstance(v, torch.Tensor)
        }
        for i, (value, count) in enumerate(pending):
            super().update(next(host) if isinstance(value, torch.Tensor) else called[i], count)

    @property
    def data(self):
        self._read()
        return super().data

    def statistics(self, method_name: str, *args, **kwargs):
        self._read()
        return super().statistics(method_name, *args, **kwargs)

    def mean(self, *args, **kwargs):
        self._read()
        return super().mean(*args, **kwargs)

    def max(self, *args, **kwargs):
        self._read()
        return super().max(*args, **kwargs)

    def min(self, *args, **kwargs):
        self._read()
        return super().min(*args, **kwargs)

    def current(self):
        self._read()
        return super().current()

    def __reduce_ex__(self, protocol):
        self._read()
        plain = HistoryBuffer.__new__(HistoryBuffer)
        plain.__dict__.update({k: v for k, v in self.__dict__.items() if k != '_pending'})
        return plain.__reduce_ex__(protocol)


def update_device_scalar(
    hub: MessageHub,
    key: str,
    value: Union[float, torch.Tensor, Callable[[], float]],
    count: int = 1,
) -> None:
    """``hub.update_scalar(key, value)`` without a host sync now.

    ``MessageHub.update_scalar`` reads a tensor with ``.item()``, which waits
    for the device every iteration; this keeps the value (a 0-dim tensor or
    a callable) in a :class:`DeviceHistoryBuffer` until the logger reads it.

    Args:
        hub (MessageHub): The runner's (or optimizer wrapper's) message hub.
        key (str): The scalar's name, e.g. ``'train/agc_clip_ratio'``.
        value (float | torch.Tensor | Callable): The value.
        count (int): Its weight in averages. Defaults to 1.
    """
    buffer = hub.log_scalars.get(key)
    if not isinstance(buffer, DeviceHistoryBuffer):
        old = buffer.data if buffer is not None else ((), ())
        buffer = hub.log_scalars[key] = DeviceHistoryBuffer(*old)
    buffer.update(value, count)
