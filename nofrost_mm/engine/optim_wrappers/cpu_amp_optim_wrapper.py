"""Mixed-precision training on a machine without an accelerator (bf16 autocast)."""

from contextlib import contextmanager
from typing import Union

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper
from mmpretrain.registry import OPTIM_WRAPPERS

from .agc_optim_wrapper import AGCMixin


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """``AmpOptimWrapper`` for a CPU: the optimizer context is bf16 autocast.

    mmengine's ``AmpOptimWrapper`` refuses a machine without a GPU (or
    NPU, MLU, MUSA), and its ``autocast`` accepts only bf16 on a CPU. bf16
    has fp32's exponent range, so the loss needs no scaling (no
    ``GradScaler``): the gradients are those of the bf16 forward pass,
    stepped as usual. ``tools/train.py --amp`` picks it on a machine
    without CUDA (:func:`amp_optim_wrapper_type`). The training attack runs
    inside this context, in bf16, made safe by :class:`PGDDataPreprocessor`.

    Args:
        dtype (str | torch.dtype): The autocast dtype: 'bfloat16', the only
            one a CPU autocast runs here. Defaults to 'bfloat16'.
        loss_scale (str | float | dict, optional): Accepted for configs
            written for ``AmpOptimWrapper`` ('dynamic', a number, a dict);
            not used (bf16 needs no loss scale). Defaults to None.
        **kwargs: ``OptimWrapper``'s arguments (``optimizer``,
            ``accumulative_counts``, ``clip_grad``).

    Example:
        >>> optim_wrapper = dict(type='CPUAmpOptimWrapper',
        ...                      optimizer=dict(type='SGD', lr=0.1))
    """

    def __init__(self, dtype: Union[str, torch.dtype] = 'bfloat16', loss_scale=None, **kwargs):
        if dtype not in ('bfloat16', torch.bfloat16):
            raise ValueError(
                f'optim_wrapper.dtype must be \'bfloat16\' with '
                f'{type(self).__name__} (a CPU autocasts to bf16 only), '
                f'got {dtype!r}'
            )
        super().__init__(**kwargs)
        self.cast_dtype = torch.bfloat16

    @contextmanager
    def optim_context(self, model: nn.Module):
        """OptimWrapper's context (gradient accumulation) under bf16 autocast.

        Args:
            model (nn.Module): The training model.
        """
        with super().optim_context(model), torch.autocast('cpu', dtype=self.cast_dtype):
            yield


@OPTIM_WRAPPERS.register_module()
class CPUAmpAGCOptimWrapper(AGCMixin, CPUAmpOptimWrapper):
    """:class:`CPUAmpOptimWrapper` with adaptive gradient clipping.

    Same arguments as :class:`AGCOptimWrapper` plus ``dtype`` and
    ``loss_scale`` (see :class:`CPUAmpOptimWrapper`).
    """


# the AMP twin of each optim wrapper type, on an accelerator / on a CPU
AMP_TYPES = {
    'cuda': {'AGCOptimWrapper': 'AmpAGCOptimWrapper', 'AmpAGCOptimWrapper': 'AmpAGCOptimWrapper'},
    'cpu': {
        'AGCOptimWrapper': 'CPUAmpAGCOptimWrapper',
        'AmpAGCOptimWrapper': 'CPUAmpAGCOptimWrapper',
        'CPUAmpAGCOptimWrapper': 'CPUAmpAGCOptimWrapper',
    },
}


def amp_optim_wrapper_type(optim_wrapper_type: str, cuda: bool) -> str:
    """The optim wrapper type that ``--amp`` turns ``optim_wrapper_type`` into.

    Adaptive gradient clipping keeps its AMP twin; anything else becomes
    ``AmpOptimWrapper`` (fp16 with a loss scaler) on a machine with CUDA,
    :class:`CPUAmpOptimWrapper` (bf16) without.

    Args:
        optim_wrapper_type (str): The config's ``optim_wrapper.type``.
        cuda (bool): Whether CUDA is available.

    Returns:
        str: The type to train with.
    """
    device = 'cuda' if cuda else 'cpu'
    default = 'AmpOptimWrapper' if cuda else 'CPUAmpOptimWrapper'
    return AMP_TYPES[device].get(optim_wrapper_type, default)
