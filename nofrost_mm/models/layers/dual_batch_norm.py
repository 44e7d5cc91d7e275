"""BatchNorm with one set of statistics and affine parameters for clean
examples and one for adversarial examples.

The approach the NoFrost paper argues against: "the dominant approach is to
extend BN to capture this mixture" (AdvProp, Xie et al. 2020, "Adversarial
Examples Improve Image Recognition"; MBN-AT). Which branch a forward pass
uses is set from outside with :func:`dual_bn_route`; outside any route the
layer uses its ``deploy_branch``, so validation, ``tools/test.py`` and
AutoAttack evaluate the branch a config names.
"""

from contextlib import contextmanager
from typing import Iterator, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS as MMENGINE_MODELS
from torch.nn.modules.batchnorm import _BatchNorm

BRANCHES = ('clean', 'adv')
# the half of every parameter and buffer each branch owns
_HALF = dict(clean=0, adv=1)
_STATE = ('weight', 'bias', 'running_mean', 'running_var')


def _check_branch(value, key: str):
    if value not in BRANCHES:
        raise ValueError(f'{key} must be one of {BRANCHES}, got {value!r}')


# Registered in mmengine's root MODELS because mmcv's ``build_norm_layer``
# looks there (through the current scope's registry when one is set), so
# ``norm_cfg=dict(type='DualBN')`` works with and without a default scope.
@MMENGINE_MODELS.register_module('DualBN')
class DualBatchNorm(_BatchNorm):
    """BatchNorm with separate clean and adversarial branches.

    Each branch has its own running mean and variance, batch count and affine
    weight and bias. They live in one tensor each, clean half first:
    ``weight``, ``bias``, ``running_mean`` and ``running_var`` have
    ``2 * num_features`` entries (``[:C]`` clean, ``[C:]`` adversarial) and
    ``num_batches_tracked`` has two. One tensor keeps what code written for
    BatchNorm expects of its parameters: they are 1-D (no weight decay or
    weight perturbation rule that spares norm layers by their dimension
    mistakes them for conv weights), initialisers that set a BN's weight
    (mmengine's ``constant_init``, e.g. a ResNet's zero-initialised last BN
    of each block) set both branches alike, and a pass through one branch
    still uses every parameter (no unused parameter under DDP).

    A plain BatchNorm state dict (``C`` entries) loads into both branches.
    Works for 2-D to 5-D inputs (BatchNorm1d/2d/3d). It is a ``_BatchNorm``
    for the code that looks for those (train/eval switching, mmengine's
    norm-specific weight decay, frozen statistics during attacks), but not a
    ``BatchNorm2d``: AutoAttack's conv-BN folding leaves it unfolded, and
    ``SyncBatchNorm`` conversion is not supported (each rank keeps its own
    batch statistics, as plain BN under DDP).

    Which branch a pass uses: the ``route`` set by :func:`dual_bn_route`
    ('clean', 'adv', or an int n: the first n samples of the batch through
    the clean branch and the rest through the adversarial one); outside a
    route, ``deploy_branch``.

    Args:
        num_features (int): Channels C of each branch.
        eps (float): As BatchNorm. Defaults to 1e-5.
        momentum (float, optional): As BatchNorm (None: cumulative average,
            each branch over its own batches). Defaults to 0.1.
        affine (bool): As BatchNorm. Defaults to True.
        track_running_stats (bool): As BatchNorm. Defaults to True.
        deploy_branch (str): The branch used outside a route: in
            validation, testing and attacks on the trained model, and in
            training passes nothing routes. 'clean' or 'adv'.
            Defaults to 'clean'.
        device, dtype: As BatchNorm.

    Example:
        >>> # every BN of an mmpretrain ResNet, as a norm_cfg
        >>> backbone = dict(type='ResNet', depth=50,
        ...                 norm_cfg=dict(type='DualBN', deploy_branch='clean'))
    """

    _abbr_ = 'bn'  # mmcv's build_norm_layer names the layer bn1, bn2, ...

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        deploy_branch: str = 'clean',
        device=None,
        dtype=None,
    ):
        _check_branch(
            deploy_branch,
            'DualBN deploy_branch (norm_cfg.deploy_branch or DualBNConverter deploy_branch)',
        )
        super().__init__(
            num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype
        )
        factory = dict(device=device, dtype=dtype)
        if affine:
            self.weight = nn.Parameter(torch.empty(2 * num_features, **factory))
            self.bias = nn.Parameter(torch.empty(2 * num_features, **factory))
        if track_running_stats:
            self.register_buffer('running_mean', torch.zeros(2 * num_features, **factory))
            self.register_buffer('running_var', torch.ones(2 * num_features, **factory))
            self.register_buffer(
                'num_batches_tracked', torch.zeros(2, dtype=torch.long, device=device)
            )
        self.reset_parameters()
        self.deploy_branch = deploy_branch
        self.route: Union[str, int, None] = None

    def _check_input_dim(self, x: torch.Tensor):
        if x.dim() < 2:
            raise ValueError(
                f'DualBatchNorm expects an (N, C, ...) input, got shape {tuple(x.shape)}'
            )

    def branch_state(self, branch: str) -> dict:
        """One branch's tensors, as a plain BatchNorm's state dict (views).

        Args:
            branch (str): 'clean' or 'adv'.

        Returns:
            dict[str, Tensor]: weight, bias, running_mean, running_var (those
            the layer has) and num_batches_tracked.
        """
        _check_branch(branch, 'branch')
        half = _HALF[branch]
        part = slice(half * self.num_features, (half + 1) * self.num_features)
        state = {
            name: getattr(self, name)[part]
            for name in _STATE
            if getattr(self, name, None) is not None
        }
        if self.num_batches_tracked is not None:
            state['num_batches_tracked'] = self.num_batches_tracked[half]
        return state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        route = self.deploy_branch if self.route is None else self.route
        if isinstance(route, str):
            return self._branch(x, route)
        if route <= 0 or route >= x.size(0):  # the whole batch in one branch
            return self._branch(x, 'clean' if route >= x.size(0) else 'adv')
        return torch.cat([self._branch(x[:route], 'clean'), self._branch(x[route:], 'adv')])

    def _branch(self, x: torch.Tensor, branch: str) -> torch.Tensor:
        """``_BatchNorm.forward`` on one branch's halves (in-place running
        statistics updates reach the buffers through the views)."""
        state = self.branch_state(branch)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            state['num_batches_tracked'].add_(1)
            if self.momentum is None:  # as BatchNorm: one host read
                factor = 1.0 / float(state['num_batches_tracked'])
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        tracked = not self.training or self.track_running_stats
        return F.batch_norm(
            x,
            state.get('running_mean') if tracked else None,
            state.get('running_var') if tracked else None,
            state.get('weight'),
            state.get('bias'),
            use_batch,
            factor,
            self.eps,
        )

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        # a plain BatchNorm's tensors (C entries, one batch count) go into
        # both branches
        for name in _STATE:
            value = state_dict.get(prefix + name)
            if value is not None and value.dim() == 1 and value.numel() == self.num_features:
                state_dict[prefix + name] = value.repeat(2)
        count = state_dict.get(prefix + 'num_batches_tracked')
        if count is not None and count.dim() == 0:
            state_dict[prefix + 'num_batches_tracked'] = count.repeat(2)
        elif count is None and self.num_batches_tracked is not None:
            # what BatchNorm does for its version-1 checkpoints
            state_dict[prefix + 'num_batches_tracked'] = torch.zeros_like(self.num_batches_tracked)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def extra_repr(self) -> str:
        return super().extra_repr() + f', branches={BRANCHES}, deploy_branch={self.deploy_branch!r}'


@contextmanager
def dual_bn_route(model: nn.Module, route: Union[str, int]) -> Iterator[None]:
    """Route the forward passes in the body through one branch of every
    :class:`DualBatchNorm` of ``model``.

    The previous routes come back on exit (routes nest). A model without
    DualBatchNorm layers is left alone, so callers need not know whether
    the model has them.

    Args:
        model (nn.Module): The (unwrapped) model.
        route (str | int): 'clean', 'adv', or an int n: in each pass the
            first n samples of the batch go through the clean branch and
            the rest through the adversarial one (one pass over a
            concatenated clean + adversarial batch).
    """
    if not isinstance(route, int) or isinstance(route, bool):
        _check_branch(route, 'dual_bn_route route')
    layers = [m for m in model.modules() if isinstance(m, DualBatchNorm)]
    saved = [m.route for m in layers]
    try:
        for m in layers:
            m.route = route
        yield
    finally:
        for m, previous in zip(layers, saved):
            m.route = previous
