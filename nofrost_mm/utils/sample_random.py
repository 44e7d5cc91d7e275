"""Random numbers owned by each sample, whatever batch it is attacked in.

An evaluation attack that draws its random start from the global generator
gives a sample a different start in a batch of 16 than in a batch of 120,
in one process than in two, and after a resume: its result then depends on
how the work was cut. Here every number is a function of a per-sample key
(the evaluation seed and the sample's dataset index), a ``stream`` naming
the use (an attack, a restart, an iteration) and the element's position, so
it is the same in any batch, process or resume point, and on any device or
CPU: the generator is integer arithmetic only (a counter-based hash, the
output permutation of O'Neill's PCG, 2014), exact everywhere.

Example:
    >>> keys = sample_keys(seed=0, indices=torch.tensor([7, 3]))
    >>> noise = sample_uniform(keys, (3, 32, 32), stream=1)  # (2, 3, 32, 32)
    >>> # the row of sample 7 is the same in any other batch holding it
"""

from typing import Sequence, Union

import torch

_MASK32 = 0xFFFFFFFF


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A bijection of [0, 2**32) (int64 tensors; no product overflows)."""
    x = (x * 747796405 + 2891336453) & _MASK32
    x = (((x >> ((x >> 28) + 4)) ^ x) * 277803737) & _MASK32
    return (x >> 22) ^ x


def _mix(keys: torch.Tensor, value: int) -> torch.Tensor:
    """Fold a non-negative int of any size into 32-bit keys."""
    value = int(value)
    if value < 0:
        raise ValueError(f'sample_random: streams and seeds must be >= 0, got {value}')
    while True:
        keys = _hash32(keys ^ (value & _MASK32))
        value >>= 32
        if not value:
            return keys


def sample_keys(
    seed: int,
    indices: Union[torch.Tensor, Sequence[int]],
    device: Union[str, torch.device, None] = None,
) -> torch.Tensor:
    """Per-sample keys from an evaluation seed and dataset indices.

    Args:
        seed (int): The evaluation seed (>= 0).
        indices (Tensor | Sequence[int]): Dataset index of each sample.
        device (str | torch.device, optional): Device of the keys.
            Defaults to that of ``indices``.

    Returns:
        Tensor: int64 keys of shape ``(len(indices),)``.
    """
    indices = torch.as_tensor(indices, dtype=torch.int64, device=device)
    if indices.dim() != 1:
        raise ValueError(f'sample_keys: indices must be 1-d, got shape {tuple(indices.shape)}')
    if len(indices) and int(indices.min()) < 0:
        raise ValueError('sample_keys: dataset indices must be >= 0')
    keys = _hash32(_hash32(indices & _MASK32) ^ (indices >> 32))
    return _mix(keys, seed)


def fold_keys(keys: torch.Tensor, value: int) -> torch.Tensor:
    """Keys of an independent draw: ``keys`` folded with ``value`` (>= 0).

    Args:
        keys (Tensor): Per-sample int64 keys.
        value (int): E.g. a restart number; different values give
            independent numbers for the same samples.
    """
    return _mix(keys.to(torch.int64), value)


def random_keys(
    num: int, device: Union[str, torch.device, None] = None, generator: torch.Generator = None
) -> torch.Tensor:
    """Keys drawn from torch's generator, for callers without dataset indices.

    Args:
        num (int): Number of keys.
        device (str | torch.device, optional): Device of the keys.
        generator (torch.Generator, optional): Source; torch's default one
            if not given (so ``torch.manual_seed`` still makes runs repeat).
    """
    return torch.randint(0, 2**32, (num,), generator=generator, dtype=torch.int64).to(device)


def sample_bits(keys: torch.Tensor, shape: Sequence[int], stream: int = 0) -> torch.Tensor:
    """Uniform 32-bit integers, ``keys.shape + shape``, as int64 in [0, 2**32).

    Args:
        keys (Tensor): Per-sample int64 keys (:func:`sample_keys`).
        shape (Sequence[int]): Shape of each sample's numbers.
        stream (int): Which use the numbers are for; different streams give
            independent numbers for the same keys. Defaults to 0.
    """
    shape = tuple(int(s) for s in shape)
    numel = 1
    for s in shape:
        numel *= s
    keys = _mix(keys.to(torch.int64), stream)
    counter = torch.arange(numel, device=keys.device, dtype=torch.int64)
    # two rounds: one alone leaves neighbouring counters correlated
    bits = _hash32(_hash32(keys[:, None] ^ counter[None]) ^ keys[:, None])
    return bits.view(keys.shape + shape)


def sample_uniform(
    keys: torch.Tensor, shape: Sequence[int], stream: int = 0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Uniform numbers in [0, 1), ``keys.shape + shape`` (24 random bits each).

    Args:
        keys (Tensor): Per-sample int64 keys (:func:`sample_keys`).
        shape (Sequence[int]): Shape of each sample's numbers.
        stream (int): Which use the numbers are for. Defaults to 0.
        dtype (torch.dtype): Floating dtype of the result. Defaults to float32.
    """
    return (sample_bits(keys, shape, stream) >> 8).to(dtype) * (1.0 / 2**24)


def sample_normal(
    keys: torch.Tensor, shape: Sequence[int], stream: int = 0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Standard normal numbers, ``keys.shape + shape`` (Box-Muller).

    Args:
        keys, shape, stream, dtype: As :func:`sample_uniform`.
    """
    u = sample_uniform(keys, (2,) + tuple(shape), stream, torch.float64)
    radius = torch.sqrt(-2.0 * torch.log1p(-u[:, 0]))
    return (radius * torch.cos(2 * torch.pi * u[:, 1])).to(dtype)


def sample_randint(
    keys: torch.Tensor, high: Union[int, torch.Tensor], shape: Sequence[int] = (), stream: int = 0
) -> torch.Tensor:
    """Integers in [0, high), ``keys.shape + shape``.

    Args:
        keys (Tensor): Per-sample int64 keys (:func:`sample_keys`).
        high (int | Tensor): Exclusive upper bound (a tensor broadcasts,
            e.g. one bound per sample of shape ``(N, 1...)``).
        shape (Sequence[int]): Shape of each sample's numbers. Defaults to ().
        stream (int): Which use the numbers are for. Defaults to 0.
    """
    # the 32 random bits times high, >> 32: unbiased enough for high << 2**32
    return (sample_bits(keys, shape, stream) * high) >> 32
