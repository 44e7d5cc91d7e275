"""The machine a measurement ran on, for benchmark headers."""

import platform


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what
    :mod:`platform` knows."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
