"""Small random MNIST IDX files for tests that need no real data."""

from pathlib import Path

import numpy as np

from tools.dataset_converters.prepare_mnist import SIDE, idx_bytes


def write_fake_mnist(root: Path, num_train: int, num_test: int) -> None:
    """Random IDX files laid out as the converter writes them."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for prefix, n in (('train', num_train), ('t10k', num_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        # a class-dependent bright square: learnable in a few steps
        images = rng.integers(0, 60, (n, SIDE, SIDE)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 * label : 2 * label + 6, 4:10] = 255
        (root / f'{prefix}-images-idx3-ubyte').write_bytes(idx_bytes(images))
        (root / f'{prefix}-labels-idx1-ubyte').write_bytes(idx_bytes(labels))
