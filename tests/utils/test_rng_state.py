import io
import random

import numpy as np
import torch

import nofrost_mm  # noqa: F401  (weights-only allow-list)
from nofrost_mm.utils import get_rng_state, set_rng_state


def _draws():
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_round_trip_through_a_weights_only_checkpoint():
    state = get_rng_state()
    expected = _draws()
    buffer = io.BytesIO()
    torch.save({'rng': state}, buffer)
    buffer.seek(0)
    _draws()  # move every generator on
    set_rng_state(torch.load(buffer, weights_only=True)['rng'])
    assert _draws() == expected
