"""Attack the samples that still resist, count those that survive: the one
loop of the robust test loops, robust validation and AutoAttack's members."""

from typing import Callable, Tuple

import torch


def survivor_rows(survived: torch.Tensor) -> torch.Tensor:
    """Indices of the samples marked in ``survived`` (N,) bool.

    The one host read of a survivors step: the count sizes the attacked
    batch (the rows themselves stay on the device).

    Args:
        survived (torch.Tensor): (N,) bool, True for the samples to attack.

    Returns:
        torch.Tensor: (M,) int64 row indices, on ``survived``'s device.
    """
    return survived.nonzero()[:, 0]


def attack_survivors(
    attack: Callable[[torch.Tensor], torch.Tensor],
    labels: torch.Tensor,
    survived: torch.Tensor,
    predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Attack the samples marked in ``survived``; unmark those broken.

    Args:
        attack (Callable): ``attack(rows)`` returns the adversarial images of
            the samples ``rows`` (the caller slices its images, labels, keys
            or targets by ``rows``).
        labels (torch.Tensor): (N,) class indices of all samples.
        survived (torch.Tensor): (N,) bool, updated in place: a sample stays
            marked when ``predict`` still gives its label.
        predict (Callable): ``predict(adv, rows)`` returns the classes
            predicted for ``adv`` (the decision of record: fp32).

    Returns:
        tuple[torch.Tensor, torch.Tensor]: The rows attacked and their
        adversarial images (empty when no sample survived). One host read:
        the number of survivors.
    """
    rows = survivor_rows(survived)
    if not len(rows):
        return rows, None
    adv = attack(rows)
    survived[rows] = predict(adv, rows) == labels[rows]
    return rows, adv


def rows_where(mask: torch.Tensor, count: int, value: bool = True) -> torch.Tensor:
    """Indices of the rows of ``mask`` equal to ``value``, in order, without
    a host read: ``count`` (the number of True rows) was read already.

    Args:
        mask (torch.Tensor): (N,) bool.
        count (int): How many rows of ``mask`` are True.
        value (bool): Which rows to return. Defaults to True.

    Returns:
        torch.Tensor: (count,) or (N - count,) int64 indices.
    """
    order = torch.argsort(mask.to(torch.uint8), stable=True)
    return order[len(mask) - count :] if value else order[: len(mask) - count]
