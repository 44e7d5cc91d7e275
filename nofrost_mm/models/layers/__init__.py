from .scaled_ws_conv import RELU_GAMMA, ScaledWSConv2d

__all__ = ['ScaledWSConv2d', 'RELU_GAMMA']
