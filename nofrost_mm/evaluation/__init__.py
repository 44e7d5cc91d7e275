from .metrics import *  # noqa: F401,F403
from .gradient_masking import gradient_masking_warnings

__all__ = ['gradient_masking_warnings']
