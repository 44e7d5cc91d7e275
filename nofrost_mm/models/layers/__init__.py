from .dual_batch_norm import DualBatchNorm, dual_bn_route
from .scaled_ws_conv import RELU_GAMMA, ScaledWSConv2d

__all__ = ['ScaledWSConv2d', 'RELU_GAMMA', 'DualBatchNorm', 'dual_bn_route']
