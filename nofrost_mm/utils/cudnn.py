"""cuDNN autotuning switched for a while (on in training, off in robust evaluation)."""

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def cudnn_autotuning(enabled: bool) -> Iterator[None]:
    """Set ``torch.backends.cudnn.benchmark`` inside; restore it on exit.

    Autotuning times every conv algorithm once per new input shape: a gain
    in training, whose batches keep one shape (``env_cfg.cudnn_benchmark``),
    and a loss in robust evaluation, whose attacks run on the samples still
    robust, a new batch size almost every batch and every member of
    AutoAttack. Without CUDA the flag changes nothing.

    Args:
        enabled (bool): The value inside the context.
    """
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before
