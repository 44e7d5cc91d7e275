from .nofrost_runner import NoFrostRunner
from .robust_test_loop import RobustTestLoop

__all__ = ['NoFrostRunner']
__all__ += ['RobustTestLoop']
