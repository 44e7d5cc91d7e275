from .agc_optim_wrapper import AGCMixin, AGCOptimWrapper, AmpAGCOptimWrapper, adaptive_clip_grad_
from .cpu_amp_optim_wrapper import CPUAmpAGCOptimWrapper, CPUAmpOptimWrapper, amp_optim_wrapper_type

__all__ = [
    'AGCMixin',
    'AGCOptimWrapper',
    'AmpAGCOptimWrapper',
    'adaptive_clip_grad_',
    'CPUAmpOptimWrapper',
    'CPUAmpAGCOptimWrapper',
    'amp_optim_wrapper_type',
]
