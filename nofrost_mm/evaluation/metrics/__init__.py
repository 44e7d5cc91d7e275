# components of this folder are imported here (one file each), which registers them
from .corruption_accuracy import CorruptionAccuracy
from .robust_accuracy import RobustAccuracy
from .robustness_records import RobustnessRecords

__all__ = ['CorruptionAccuracy', 'RobustAccuracy', 'RobustnessRecords']
