"""Test loop of the robustness report: restarts, chained attacks, input gradients."""

from typing import Dict, Sequence, Union

import numpy as np
import torch
from mmpretrain.registry import LOOPS

from nofrost_mm.attacks import NormalizedClassifier, attack_settings
from nofrost_mm.attacks.logit_margin import logit_margin
from nofrost_mm.evaluation.robustness_report.attack_entries import split_report_keys
from .robust_test_loop import RobustTestLoop


def margin_gradients(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor):
    """Clean logit margin and the L1 norm of its gradient w.r.t. the images.

    The margin, not the cross entropy, is differentiated: the cross-entropy
    gradient underflows to exactly 0 on confidently classified samples of
    any model (a saturated softmax), which would look like masking; the
    margin's gradient is 0 only where the network is flat in its input
    (quantised or detached inputs, dead units). A model whose output does
    not depend differentiably on its input at all gets zeros.

    Args:
        net (nn.Module): Maps [0, 1] images to logits.
        images (torch.Tensor): (N, C, H, W) images in [0, 1].
        labels (torch.Tensor): (N,) class indices.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: margins (N,) and gradient L1
        norms (N,), non-finite where the gradient is.
    """
    with torch.enable_grad():
        x = images.detach().clone().requires_grad_(True)
        margin = logit_margin(net(x).float(), labels)
        if margin.requires_grad:
            (grad,) = torch.autograd.grad(margin.sum(), x, allow_unused=True)
        else:
            grad = None
    if grad is None:
        grad = torch.zeros_like(x)
    return margin.detach(), grad.flatten(1).abs().sum(1)


@LOOPS.register_module()
class RobustnessReportLoop(RobustTestLoop):
    """:class:`RobustTestLoop` with what an attack-strength report needs.

    Same subset, batches, seeding per batch and distribution as
    :class:`RobustTestLoop` (``tools/dist_test.sh``-style runs give the
    numbers of one process), plus, per attack config, two optional keys:

    - ``restarts`` (int): run the attack up to this many times, each run on
      the samples that survived the previous ones (a sample is broken if any
      run breaks it). The result ``name`` is the first run alone, and
      ``<name>x<restarts>`` the worst case over all runs.
    - ``after`` (str): the name of an earlier result; attack only its
      survivors, and count the samples it broke as broken. Valid when this
      attack's threat model contains the earlier one's (e.g. a larger eps),
      which makes an eps sweep monotone and cheap.

    For every sample it also records the clean logit margin and the L1 norm
    of the margin's input gradient (:func:`margin_gradients`), and writes a
    line per attack and batch on rank 0 (samples surviving each run, time),
    besides the parent loop's throttled progress lines (a line per restart
    when one is due). The parent loop runs the attacks; this one plans
    them (``_plan_attacks``), seeds each restart and adds
    :meth:`sample_values`.

    Args:
        runner (Runner): The runner.
        dataloader (dict): The test dataloader config.
        evaluator (Evaluator | dict | list): Metrics; use
            :class:`RobustnessRecords` to keep the per-sample records.
        attacks (Sequence[dict | str]): Attack configs of the ATTACKS
            registry (pixel units of 255), with optional ``name``,
            ``restarts`` and ``after``. Defaults to ``()``.
        progress (bool): Write progress lines on rank 0, and a line per
            attack and batch; False draws a progress bar only.
            Defaults to True.
        **kwargs: ``num_samples``, ``seed``, ``masking_tolerance``,
            ``fp16``, ``state_dir``, ``resume``, ``progress_interval`` of
            :class:`RobustTestLoop`
            (no ``cascade``: restarts and ``after`` chain attacks here).

    Example:
        >>> test_cfg = dict(type='RobustnessReportLoop', num_samples=64,
        ...                 attacks=[dict(type='PGDAttack', eps=8, steps=20,
        ...                               name='PGD-20', restarts=5)])
    """

    line_per_attack = True

    def __init__(self, *args, progress: bool = True, **kwargs):
        if not isinstance(progress, bool):
            raise ValueError(f'test_cfg.progress must be True or False, got {progress!r}')
        if not progress:
            kwargs['progress_interval'] = None
        super().__init__(*args, **kwargs)

    def _plan_attacks(self, attacks: Sequence[Union[dict, str]]) -> None:
        """The parent's plan of the entries' attacks, with their
        ``restarts`` and ``after``."""
        if self.cascade:
            raise TypeError(
                "test_cfg.cascade is RobustTestLoop's; "
                "RobustnessReportLoop chains attacks with 'after'"
            )
        attacks, restarts, after = split_report_keys(attacks)
        super()._plan_attacks(attacks)
        self.restarts = restarts
        self.start_from = [prev or 'clean' for prev in after]

    @property
    def attack_settings(self) -> Dict[str, dict]:
        """The parent's, with each entry's ``restarts``."""
        return {
            name: attack_settings(attack, restarts)
            for (name, attack, _), restarts in zip(self.attacks, self.restarts)
        }

    def _seed(self, chunk: int, restart: int) -> int:
        # one stream per (seed, batch, restart), the same whichever process
        # attacks the batch; as in RobustTestLoop, attacks with a random
        # start share it, so PGD-5 ... PGD-100 differ only in their steps
        seq = np.random.SeedSequence([self.seed, chunk, restart])
        return int(seq.generate_state(1)[0] % 2**31)

    def sample_values(
        self, net: NormalizedClassifier, images: torch.Tensor, labels: torch.Tensor
    ) -> Dict[str, torch.Tensor]:
        """The clean logit margin and the L1 norm of its input gradient
        (:func:`margin_gradients`), measured before the attacks."""
        margin, grad_l1 = margin_gradients(net, images, labels)
        return dict(margin=margin, grad_l1=grad_l1)
