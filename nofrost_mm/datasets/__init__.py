from .digits import SklearnDigits
from .transforms import *  # noqa: F401,F403

__all__ = ['SklearnDigits']
