from .digits import SklearnDigits

__all__ = ['SklearnDigits']
