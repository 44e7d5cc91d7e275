"""The logit margin ``z_y - max_{j != y} z_j``: one definition for the CW
loss, the robustness report and the decision-margin analysis."""

import torch


def logit_margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``z_y - max_{j != y} z_j`` per sample (> 0 when classified as ``y``).

    Gathers and masks on the logits' device: no host sync (a boolean-mask
    index ``logits[one_hot]`` would read the mask's count), differentiable
    in ``logits``.

    Args:
        logits (torch.Tensor): (N, K) logits.
        labels (torch.Tensor): (N,) class indices on the logits' device.

    Returns:
        torch.Tensor: (N,) margins, in the logits' dtype.
    """
    labels = labels.view(-1, 1)
    real = logits.gather(1, labels).squeeze(1)
    other = logits.scatter(1, labels, float('-inf')).amax(dim=1)
    return real - other
