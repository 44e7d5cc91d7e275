from .gradient_masking import gradient_masking_warnings
from .metrics import *  # noqa: F401,F403

__all__ = ['gradient_masking_warnings']
