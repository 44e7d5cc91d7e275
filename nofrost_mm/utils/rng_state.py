"""Capture and restore every global random number generator of a process.

Bit-exact resume needs more than the seed: mmengine re-seeds nothing on resume
when the config has a seed, so transforms that draw from numpy's or python's
global RNG (``RandomCrop``, ``RandomResizedCrop``), dropout/drop-path (torch)
and a random PGD start would continue from a different state than an
uninterrupted run. The states are plain tuples, numpy arrays and byte
tensors, all loadable with ``torch.load(weights_only=True)``.
"""

import random

import numpy as np
import torch


def get_rng_state() -> dict:
    """The states of python's, numpy's, torch's (and CUDA's) global RNGs."""
    state = dict(python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state()  # this process's device
    return state


def set_rng_state(state: dict) -> None:
    """Restore the states returned by :func:`get_rng_state`."""
    version, internal, gauss = state['python']
    # weights-only loading returns lists where pickle had tuples
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(tuple(state['numpy']))
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state['cuda'].cpu())
