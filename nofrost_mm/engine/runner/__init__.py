from .nofrost_runner import NoFrostRunner

__all__ = ['NoFrostRunner']
