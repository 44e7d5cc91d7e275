"""The memory format of a model, read from its weights (the one source of it)."""

import torch
import torch.nn as nn


def model_memory_format(model: nn.Module) -> torch.memory_format:
    """``torch.channels_last`` when the model's conv weights are, else contiguous.

    ``NoFrostRunner`` converts the model for the config key
    ``channels_last = True``; batches, attacks and tests follow the weights,
    so the layout is never read from the config twice.

    Args:
        model (nn.Module): The (unwrapped) model.
    """
    for p in model.parameters():
        # the first 4-d weight whose two layouts differ (not a 1x1 conv of
        # one input channel) decides
        if p.dim() == 4 and p.is_contiguous() != p.is_contiguous(memory_format=torch.channels_last):
            return torch.contiguous_format if p.is_contiguous() else torch.channels_last
    return torch.contiguous_format
