"""ImageNet-C corruptions (Hendrycks & Dietterich 2019) through ``imagecorruptions``.

``imagecorruptions`` 1.1.2 (the last release, 2020) implements the 15
ImageNet-C corruptions and 4 validation ones, but three of them fail with
NumPy 2 / scikit-image >= 0.19: ``glass_blur`` and ``gaussian_blur`` call
``skimage.filters.gaussian(..., multichannel=True)``, an argument removed in
favour of ``channel_axis=-1``, and ``fog`` allocates with ``np.float_``,
removed in favour of ``np.float64``. The three functions below are the
package's code with only those two substitutions; every other corruption is
the package's own. ``tests/datasets/transforms/test_image_corruption.py``
checks that they are bit-identical to the package's functions run with the
old names restored (a shim for ``multichannel`` and for ``np.float_``), at
every severity, with the same NumPy seed.
"""

import numpy as np
from PIL import Image


def gaussian(*args, **kwargs):
    # imported on use: scikit-image is needed by the corruptions only
    from skimage.filters import gaussian as sk_gaussian

    return sk_gaussian(*args, **kwargs)


# the order of NOFROST.md's AlexNet errors (ImageNet-C's "common" corruptions)
IMAGENET_C_CORRUPTIONS = (
    'gaussian_noise',
    'shot_noise',
    'impulse_noise',
    'defocus_blur',
    'glass_blur',
    'motion_blur',
    'zoom_blur',
    'snow',
    'frost',
    'fog',
    'brightness',
    'contrast',
    'elastic_transform',
    'pixelate',
    'jpeg_compression',
)
VALIDATION_CORRUPTIONS = ('speckle_noise', 'gaussian_blur', 'spatter', 'saturate')
ALL_CORRUPTIONS = IMAGENET_C_CORRUPTIONS + VALIDATION_CORRUPTIONS
# AlexNet's ImageNet-C top-1 error per corruption (mean over severities)
ALEXNET_ERRORS = dict(
    zip(
        IMAGENET_C_CORRUPTIONS,
        (
            0.886428,
            0.894468,
            0.922640,
            0.819880,
            0.826268,
            0.785948,
            0.798360,
            0.866816,
            0.826572,
            0.819324,
            0.564592,
            0.853204,
            0.646056,
            0.717840,
            0.606500,
        ),
    )
)


def gaussian_blur(x, severity=1):
    c = [1, 2, 3, 4, 6][severity - 1]

    x = gaussian(np.array(x) / 255.0, sigma=c, channel_axis=-1)
    return np.clip(x, 0, 1) * 255


def glass_blur(x, severity=1):
    # sigma, max_delta, iterations
    c = [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)][severity - 1]

    x = np.uint8(gaussian(np.array(x) / 255.0, sigma=c[0], channel_axis=-1) * 255)
    x_shape = np.array(x).shape

    # locally shuffle pixels (kept as in ImageNet-C: the tuple assignment of
    # numpy views copies rather than swaps)
    for i in range(c[2]):
        for h in range(x_shape[0] - c[1], c[1], -1):
            for w in range(x_shape[1] - c[1], c[1], -1):
                dx, dy = np.random.randint(-c[1], c[1], size=(2,))
                h_prime, w_prime = h + dy, w + dx
                x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]

    return np.clip(gaussian(x / 255.0, sigma=c[0], channel_axis=-1), 0, 1) * 255


def plasma_fractal(mapsize=256, wibbledecay=3):
    """Heightmap by the diamond-square algorithm, floats in [0, 1]."""
    assert mapsize & (mapsize - 1) == 0
    maparray = np.empty((mapsize, mapsize), dtype=np.float64)
    maparray[0, 0] = 0
    stepsize = mapsize
    wibble = 100

    def wibbledmean(array):
        return array / 4 + wibble * np.random.uniform(-wibble, wibble, array.shape)

    def fillsquares():
        cornerref = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        squareaccum = cornerref + np.roll(cornerref, shift=-1, axis=0)
        squareaccum += np.roll(squareaccum, shift=-1, axis=1)
        maparray[stepsize // 2 : mapsize : stepsize, stepsize // 2 : mapsize : stepsize] = (
            wibbledmean(squareaccum)
        )

    def filldiamonds():
        mapsize = maparray.shape[0]
        drgrid = maparray[stepsize // 2 : mapsize : stepsize, stepsize // 2 : mapsize : stepsize]
        ulgrid = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        ldrsum = drgrid + np.roll(drgrid, 1, axis=0)
        lulsum = ulgrid + np.roll(ulgrid, -1, axis=1)
        ltsum = ldrsum + lulsum
        maparray[0:mapsize:stepsize, stepsize // 2 : mapsize : stepsize] = wibbledmean(ltsum)
        tdrsum = drgrid + np.roll(drgrid, 1, axis=1)
        tulsum = ulgrid + np.roll(ulgrid, -1, axis=0)
        ttsum = tdrsum + tulsum
        maparray[stepsize // 2 : mapsize : stepsize, 0:mapsize:stepsize] = wibbledmean(ttsum)

    while stepsize >= 2:
        fillsquares()
        filldiamonds()
        stepsize //= 2
        wibble /= wibbledecay

    maparray -= maparray.min()
    return maparray / maparray.max()


def fog(x, severity=1):
    from imagecorruptions.corruptions import next_power_of_2

    c = [(1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)][severity - 1]

    shape = np.array(x).shape
    max_side = np.max(shape)
    map_size = next_power_of_2(int(max_side))

    x = np.array(x) / 255.0
    max_val = x.max()

    x_shape = np.array(x).shape
    if len(x_shape) < 3 or x_shape[2] < 3:
        x += c[0] * plasma_fractal(mapsize=map_size, wibbledecay=c[1])[: shape[0], : shape[1]]
    else:
        x += (
            c[0]
            * plasma_fractal(mapsize=map_size, wibbledecay=c[1])[: shape[0], : shape[1]][
                ..., np.newaxis
            ]
        )
    return np.clip(x * max_val / (max_val + c[0]), 0, 1) * 255


_PORTED = dict(gaussian_blur=gaussian_blur, glass_blur=glass_blur, fog=fog)


def corrupt(image: np.ndarray, corruption: str, severity: int) -> np.ndarray:
    """``imagecorruptions.corrupt`` with the three NumPy 2 ports above.

    Args:
        image (np.ndarray): uint8 image (H, W, 3) or (H, W), H and W >= 32,
            RGB order.
        corruption (str): One of ``ALL_CORRUPTIONS``.
        severity (int): 1 to 5.

    Returns:
        np.ndarray: The corrupted uint8 image, same shape as ``image``.
    """
    from imagecorruptions import corrupt as ic_corrupt

    if corruption not in _PORTED:
        return ic_corrupt(image, severity=severity, corruption_name=corruption)
    if image.ndim == 2:
        image = np.stack((image,) * 3, axis=-1)
    elif image.shape[2] == 1:
        image = np.stack((np.squeeze(image),) * 3, axis=-1)
    if image.shape[0] < 32 or image.shape[1] < 32:
        raise ValueError('corrupt: image width and height must be at least 32')
    return np.uint8(_PORTED[corruption](Image.fromarray(image), severity))
