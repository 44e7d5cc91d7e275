"""The bundled digits: scikit-learn's data and split, without importing scikit-learn."""

import sys

import numpy as np
import pytest

from nofrost_mm.datasets.digits import DIGITS_SPLITS, SklearnDigits, _load_digits
from tests.conftest import run_tool


def test_images_and_labels_are_load_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = _load_digits()
    assert np.array_equal(images, digits.images) and np.array_equal(labels, digits.target)


@pytest.mark.parametrize('split', DIGITS_SPLITS)
def test_stored_split_is_scikit_learns(split):
    stored = SklearnDigits.split_indices(split)
    assert np.array_equal(stored, SklearnDigits.compute_split_indices(split))
    assert len(stored) == dict(train=1149, val=288, trainval=1437, test=360)[split]


def test_splits_are_disjoint_and_cover_everything():
    parts = [set(SklearnDigits.split_indices(s).tolist()) for s in ('train', 'val', 'test')]
    assert sum(map(len, parts)) == len(set.union(*parts)) == 1797


def test_building_the_dataset_does_not_import_scikit_learn():
    # importing scikit-learn took about 1 s of every process that trains on the digits
    code = (
        'import sys\n'
        'from nofrost_mm.datasets.digits import SklearnDigits\n'
        'ds = SklearnDigits(split="val", img_size=16)\n'
        'assert len(ds) == 288 and ds[0]["img"].shape == (16, 16, 3)\n'
        'assert not [m for m in sys.modules if m.startswith("sklearn")], "sklearn imported"\n'
    )
    run_tool([sys.executable, '-c', code])  # fails with the child's stderr
