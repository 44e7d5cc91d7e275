from .nofrost_runner import CheckpointLoadError, NoFrostRunner
from .robust_test_loop import RobustTestLoop
from .robustness_report_loop import RobustnessReportLoop

__all__ = ['CheckpointLoadError', 'NoFrostRunner', 'RobustTestLoop', 'RobustnessReportLoop']
