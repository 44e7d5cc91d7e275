from .agc_optim_wrapper import (AGCMixin, AGCOptimWrapper, AmpAGCOptimWrapper,
                                adaptive_clip_grad_)

__all__ = [
    'AGCMixin', 'AGCOptimWrapper', 'AmpAGCOptimWrapper', 'adaptive_clip_grad_'
]
