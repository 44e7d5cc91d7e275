"""A deliberately gradient-masked classifier for the robustness-report tests."""

import torch
from mmpretrain.models import ImageClassifier
from mmpretrain.registry import MODELS


@MODELS.register_module(force=True)
class QuantizedInputClassifier(ImageClassifier):
    """ImageClassifier that rounds its (normalized) input to a grid.

    Rounding is non-differentiable: its gradient is 0 everywhere, so every
    gradient-based attack sees a flat model while the predictions barely
    change (the input-quantisation defences of Athalye et al. 2018). Same
    parameters, hence same checkpoints, as ``ImageClassifier``.

    Args:
        step (float): Grid step in the normalized input space (0.25: five
            grey levels for the digits config's [0, 1] inputs).
            Defaults to 0.25.
        *args, **kwargs: Arguments of ``ImageClassifier``.
    """

    def __init__(self, *args, step: float = 0.25, **kwargs):
        super().__init__(*args, **kwargs)
        self.step = step

    def extract_feat(self, inputs, stage='neck'):
        return super().extract_feat(torch.round(inputs / self.step) * self.step, stage)
