from .nofrost_runner import NoFrostRunner
from .robust_test_loop import RobustTestLoop
from .robustness_report_loop import RobustnessReportLoop

__all__ = ['NoFrostRunner', 'RobustTestLoop', 'RobustnessReportLoop']
