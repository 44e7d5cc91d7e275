# components of this folder are imported here (one file each), which registers them
from .robust_accuracy import RobustAccuracy

__all__ = ['RobustAccuracy']
