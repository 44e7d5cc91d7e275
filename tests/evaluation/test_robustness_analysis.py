"""Margins, boundary distances, gradient norms and Lipschitz estimates on a
linear classifier, where each has a closed form."""

import torch
import torch.nn as nn

from nofrost_mm.attacks import NormalizedClassifier
from nofrost_mm.evaluation import robustness_analysis as ra


class Linear2(nn.Module):
    """Two-class linear classifier with mmpretrain's ``mode='tensor'`` call."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x, mode='tensor'):
        return x.flatten(1) @ torch.stack([-self.w, self.w]).T


def _setup(n=6):
    torch.manual_seed(0)
    w = torch.randn(3 * 4 * 4) * 1e-3
    net = NormalizedClassifier(Linear2(w)).eval()  # logits of x * 255
    x = 0.5 + 0.02 * torch.randn(n, 3, 4, 4)
    with torch.no_grad():
        y = net(x).argmax(1)
    return net, w, x, y


def test_boundary_distance_and_logit_margin_match_the_closed_form():
    net, w, x, y = _setup()
    margin = ra.logit_margins(net, x, y)
    # logits are 255 * (+-w . x): margin 2 * 255 * |w . x|, and each unit of
    # L-inf radius (/255) along -sign moves it by 2 * ||w||_1
    expected_margin = 2 * 255 * (x.flatten(1) @ w).abs()
    assert torch.allclose(margin, expected_margin, rtol=1e-4)
    dist = ra.boundary_distances(net, x, y, eps_max=64, steps=5, search_steps=14)
    expected = expected_margin / (2 * w.abs().sum())
    assert torch.all(expected < 64)
    assert torch.allclose(dist, expected, atol=64 / 8 / 2**13 + 1e-4)
    far = ra.boundary_distances(net, x, y, eps_max=expected.min().item() / 2, steps=5)
    assert torch.isinf(far).all()  # censored: no crossing within eps_max


def test_gradient_norm_and_lipschitz_match_the_closed_form():
    net, w, x, y = _setup()
    grads = ra.input_gradient_norms(net, x, y)
    with torch.no_grad():
        p = net(x).softmax(1)
    # d CE / dx = 255 * (p - onehot) @ W, W = [-w, w]: |2 * 255 * (p_1 - y_1)| * |w|
    expected = 2 * 255 * (p[:, 1] - (y == 1).float()).abs() * w.abs().sum()
    assert torch.allclose(grads, expected, rtol=1e-4)
    lip = ra.local_lipschitz(net, x, eps=4, steps=5)
    # sup ||W d||_1 / ||d||_inf = 2 * 255 * ||w||_1, reached at d = sign(w)
    assert torch.allclose(lip, 2 * 255 * w.abs().sum().expand(len(x)), rtol=1e-4)


def test_summary_counts_censored_values():
    s = ra.summary(torch.tensor([1.0, 2.0, 3.0, float('inf')]))
    assert s['censored'] == 0.25 and s['median'] == 2.0 and s['n'] == 4
