# components of this folder are imported here (one file each), which registers them
from .adv_image_classifier import AdvImageClassifier

__all__ = ['AdvImageClassifier']
