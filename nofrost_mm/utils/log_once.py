"""One log line per distinct message, for warnings that would repeat every step."""

import logging
from typing import Set

from mmengine.logging import print_log


class LogOnce:
    """Write each distinct message once through mmengine's current logger.

    A component that may say the same thing every iteration (an attack that
    falls back to fp32, an fp16 overflow that is redone) owns one instance
    and calls it; repeats are dropped.

    Args:
        level (int): Logging level of the lines. Defaults to
            ``logging.WARNING``.

    Example:
        >>> log_once = LogOnce()
        >>> for _ in range(3):
        ...     log_once('FAB runs in fp32 under bf16 autocast')  # one line
    """

    def __init__(self, level: int = logging.WARNING):
        self.level = level
        self.said: Set[str] = set()

    def __call__(self, message: str) -> bool:
        """Log ``message`` unless it was logged before; True if it was written."""
        if message in self.said:
            return False
        self.said.add(message)
        print_log(message, logger='current', level=self.level)
        return True
