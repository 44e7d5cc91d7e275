"""The AutoAttack tests' tiny CNN on 8x8 digits, trained once per process.

Small enough for the full standard settings (100 iterations, 9 targets,
5000 Square queries) to run in seconds, trained enough that the attacks
break some correct samples and leave others.
"""

import functools

import torch.nn as nn
import torch.nn.functional as F

from ..toy import train_on_digits_8x8


class TinyCNN(nn.Module):
    """Two convolutions and a linear layer on 8x8 RGB digits (10 classes)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        return self.fc(x.flatten(1))


@functools.lru_cache(maxsize=None)
def _trained_state():
    return train_on_digits_8x8(TinyCNN)


def trained_tiny_cnn() -> TinyCNN:
    """A new :class:`TinyCNN` with the trained weights, in eval mode and
    without parameter gradients (each caller may change its copy)."""
    model = TinyCNN()
    model.load_state_dict(_trained_state())
    return model.eval().requires_grad_(False)
