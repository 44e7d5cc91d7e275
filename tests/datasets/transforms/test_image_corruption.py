"""ImageCorruption: the 19 corruptions on real digits, seeding, and the NumPy 2 ports."""

import numpy as np
import pytest
from mmpretrain.registry import DATASETS, TRANSFORMS
from PIL import Image

import nofrost_mm  # noqa: F401
from nofrost_mm.datasets.transforms import corruption_functions as cf


@pytest.fixture(scope='module')
def digit():
    ds = DATASETS.build(dict(type='SklearnDigits', split='test'))
    return ds[3]['img']


def _run(img, sample_idx=0, **kwargs):
    t = TRANSFORMS.build(dict(type='ImageCorruption', **kwargs))
    return t(dict(img=img.copy(), sample_idx=sample_idx))['img']


@pytest.mark.parametrize('name', cf.ALL_CORRUPTIONS)
def test_every_corruption_runs_on_a_32px_digit(digit, name):
    out = _run(digit, corruption=name, severity=5)
    assert out.shape == digit.shape and out.dtype == np.uint8
    assert not np.array_equal(out, digit)


def test_seeded_per_sample_and_global_rng_untouched(digit):
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    t = TRANSFORMS.build(dict(type='ImageCorruption', corruption='gaussian_noise', severity=3))
    a = t(dict(img=digit.copy(), sample_idx=7))['img']
    b = t(dict(img=digit.copy(), sample_idx=7))['img']
    c = t(dict(img=digit.copy(), sample_idx=8))['img']
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(np.random.get_state()[1], before)


def test_reads_corruption_from_the_sample_and_handles_bgr(digit):
    t = TRANSFORMS.build(dict(type='ImageCorruption', channel_order='bgr'))
    colour = digit.copy()
    colour[..., 0] //= 2  # make channel order matter
    out = t(dict(img=colour.copy(), sample_idx=0, corruption='frost', severity=2))
    rgb = _run(colour[..., ::-1].copy(), corruption='frost', severity=2)
    assert np.array_equal(out['img'], rgb[..., ::-1])
    assert (out['corruption'], out['severity']) == ('frost', 2)


@pytest.mark.parametrize(
    'kwargs, match',
    [
        (dict(corruption='foggy'), r"corruption='foggy' is not a corruption; allowed: \["),
        (dict(severity=6), 'severity=6 must be an int in 1..5'),
        (dict(channel_order='rgba'), "channel_order must be 'rgb' or 'bgr'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TRANSFORMS.build(dict(type='ImageCorruption', **kwargs))


@pytest.mark.parametrize('name', ['glass_blur', 'fog', 'gaussian_blur'])
def test_ports_are_bit_identical_to_imagecorruptions(monkeypatch, name):
    """imagecorruptions' own function, with the removed names put back
    (``multichannel=True`` is ``channel_axis=-1``; ``np.float_`` is
    ``np.float64``), against the port, same NumPy seed, every severity."""
    import imagecorruptions.corruptions as icc
    from skimage.filters import gaussian

    def old_gaussian(*args, multichannel=None, **kwargs):
        if multichannel:
            kwargs['channel_axis'] = -1
        return gaussian(*args, **kwargs)

    monkeypatch.setattr(icc, 'gaussian', old_gaussian)
    monkeypatch.setattr(np, 'float_', np.float64, raising=False)
    img = (np.random.RandomState(1).rand(40, 36, 3) * 255).astype(np.uint8)
    for severity in range(1, 6):
        np.random.seed(severity)
        reference = np.uint8(getattr(icc, name)(Image.fromarray(img), severity))
        np.random.seed(severity)
        assert np.array_equal(cf.corrupt(img, name, severity), reference)
