from typing import Tuple

import torch
import torch.nn as nn
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS


@MODELS.register_module()
class DropoutLinearClsHead(LinearClsHead):
    """Linear classifier head with dropout on its input features.

    mmpretrain's ``LinearClsHead`` has no dropout and ``StackedLinearClsHead``
    only drops after hidden layers; timm's NF-ResNet head (and the NoFrost
    recipe, rate 0.25) drops the pooled features right before the classifier.

    Args:
        dropout_rate (float): Probability of zeroing a feature during
            training. Defaults to 0.
        **kwargs: Arguments of ``LinearClsHead`` (``num_classes``,
            ``in_channels``, ``loss``, ``init_cfg``...).

    Example:
        >>> head = dict(type='DropoutLinearClsHead', num_classes=1000,
        ...             in_channels=2048, dropout_rate=0.25)
    """

    def __init__(self, dropout_rate: float = 0.0, **kwargs):
        if not 0 <= dropout_rate < 1:
            raise ValueError(f'DropoutLinearClsHead: dropout_rate={dropout_rate} must be in [0, 1)')
        super().__init__(**kwargs)
        self.dropout_rate = dropout_rate
        self.dropout = nn.Dropout(dropout_rate)

    def pre_logits(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        return self.dropout(super().pre_logits(feats))
