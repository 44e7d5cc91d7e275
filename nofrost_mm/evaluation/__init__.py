from .metrics import *  # noqa: F401,F403
from .robustness_report_loop import RobustnessReportLoop  # noqa: F401  (registers it)
