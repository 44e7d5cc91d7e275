# components of this folder are imported here (one file each), which registers them
from .pgd_data_preprocessor import PGDDataPreprocessor

__all__ = ['PGDDataPreprocessor']
