"""The one rule for attack sizes given in pixel units of 255 (``eps=8`` is 8/255).

Shared by the plug-in's own attacks and the torchattacks adapters, so that a
[0, 1]-scale value (``eps=0.03`` meant as 8/255) is refused by both instead
of silently giving an attack of 0.03/255.
"""


def check_pixel_size(attack: str, key: str, value, norm: str, allow_zero: bool = False) -> None:
    """Raise a clear error for a size that is not in pixel units of 255.

    Args:
        attack (str): Attack name, for the message.
        key (str): The argument (``eps``, ``alpha``...).
        value: Its value.
        norm (str): ``'Linf'`` bounds the value to (0, 255]; an L-inf eps
            below 0.5 is refused as a likely [0, 1]-scale value.
        allow_zero (bool): Accept 0 (an attack that returns the images
            unchanged, e.g. the start of an eps warm-up). Defaults to False.
    """
    lowest = 'a number >= 0' if allow_zero else 'a positive number'
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        raise ValueError(
            f'attack {attack}: {key}={value!r} must be {lowest} in pixel units of 255 (8 = 8/255)'
        )
    if norm == 'Linf' and value > 255:
        raise ValueError(
            f'attack {attack}: {key}={value!r} is out of range '
            '(0, 255] for an L-inf attack (pixel units of 255)'
        )
    if norm == 'Linf' and key in ('eps', 'max_epsilon') and 0 < value < 0.5:
        raise ValueError(
            f'attack {attack}: {key}={value!r} looks like a [0, 1]-scale '
            f'value; sizes are in pixel units of 255 (use {key}='
            f'{value * 255:g} for {value!r} in [0, 1])'
        )
