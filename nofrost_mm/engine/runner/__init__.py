from .nofrost_runner import CheckpointLoadError, NoFrostRunner
from .robust_test_loop import RobustTestLoop

__all__ = ['CheckpointLoadError', 'NoFrostRunner']
__all__ += ['RobustTestLoop']
