"""Test loop of the robustness report: restarts, chained attacks, input gradients."""
import time
from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmpretrain.registry import LOOPS
from torch.utils.data import DataLoader

from nofrost_mm.attacks import NormalizedClassifier
from nofrost_mm.engine.runner.robust_test_loop import RobustTestLoop, attack_name


def restart_name(name: str, restarts: int) -> str:
    """Result name of the per-sample worst case over ``restarts`` runs."""
    return f'{name}x{restarts}'


def logit_margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``z_y - max_{j != y} z_j`` per sample (> 0 when classified correctly)."""
    one_hot = torch.nn.functional.one_hot(labels, logits.size(1)).bool()
    other = logits.masked_fill(one_hot, float('-inf')).amax(dim=1)
    return logits[one_hot] - other


def margin_gradients(net: torch.nn.Module, images: torch.Tensor,
                     labels: torch.Tensor):
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
            grad, = torch.autograd.grad(margin.sum(), x, allow_unused=True)
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
    of the margin's input gradient (:func:`margin_gradients`), and prints a
    line per attack and batch on rank 0 (result, time). Only
    :meth:`attack_batch` differs from the parent loop.

    Args:
        runner (Runner): The runner.
        dataloader (dict): The test dataloader config.
        evaluator (Evaluator | dict | list): Metrics; use
            :class:`RobustnessRecords` to keep the per-sample records.
        attacks (Sequence[dict | str]): Attack configs of the ATTACKS
            registry (pixel units of 255), with optional ``name``,
            ``restarts`` and ``after``. Defaults to ``()``.
        num_samples (int, optional): Fixed random subset size (seeded).
            Defaults to None (the whole set).
        seed (int): Seed of the subset and of the attacks. Defaults to 0.
        masking_tolerance (float): Points a stronger attack may exceed a
            weaker one by before the guard of :class:`RobustTestLoop` warns.
            Defaults to 0.
        fp16 (bool): Run the model under autocast. Defaults to False.
        progress (bool): Print a line per attack and batch on rank 0.
            Defaults to True.

    Example:
        >>> test_cfg = dict(type='RobustnessReportLoop', num_samples=64,
        ...                 attacks=[dict(type='PGDAttack', eps=8, steps=20,
        ...                               name='PGD-20', restarts=5)])
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 evaluator,
                 attacks: Sequence[Union[dict, str]] = (),
                 num_samples: Optional[int] = None,
                 seed: int = 0,
                 masking_tolerance: float = 0.,
                 fp16: bool = False,
                 progress: bool = True):
        attacks, self.restarts, self.after = split_report_keys(attacks)
        self.progress = progress
        super().__init__(runner, dataloader, evaluator, attacks, num_samples,
                         seed, masking_tolerance, fp16)

    def _seed(self, chunk: int, restart: int) -> int:
        # one stream per (seed, batch, restart), the same whichever process
        # attacks the batch; as in RobustTestLoop, attacks with a random
        # start share it, so PGD-5 ... PGD-100 differ only in their steps
        seq = np.random.SeedSequence([self.seed, chunk, restart])
        return int(seq.generate_state(1)[0] % 2**31)

    def attack_batch(self, idx: int, net: NormalizedClassifier,
                     images: torch.Tensor, labels: torch.Tensor,
                     correct: Dict[str, torch.Tensor],
                     seconds: Dict[str, float]) -> Dict[str, torch.Tensor]:
        """Input gradients, then every attack with its restarts and chain."""
        chunk = self._batch_sampler.chunk_ids[idx]
        margin, grad_l1 = margin_gradients(net, images, labels)
        for a, (name, attack, _) in enumerate(self.attacks):
            start = time.perf_counter()
            survived = correct[self.after[a] or 'clean'].clone()
            for r in range(self.restarts[a]):
                self.attack_survivors(net, attack, images, labels, survived,
                                      self._seed(chunk, r))
                if r == 0:
                    correct[name] = survived.clone()
                    seconds[name] = time.perf_counter() - start
            if self.restarts[a] > 1:
                full = restart_name(name, self.restarts[a])
                correct[full] = survived
                seconds[full] = time.perf_counter() - start
            self._print_progress(idx, name, correct, seconds)
        return dict(margin=margin, grad_l1=grad_l1)

    def _print_progress(self, idx: int, name: str, correct: dict,
                        seconds: dict) -> None:
        if not self.progress or get_dist_info()[0] != 0:
            return
        n = len(correct['clean'])
        names = [k for k in correct if k == name or k.startswith(name + 'x')]
        parts = [f'{k} {int(correct[k].sum())}/{n} survive '
                 f'({seconds[k]:.1f} s)' for k in names]
        # the first line of a batch leaves the progress bar's line
        first = name == self.attacks[0][0]
        print(('\n' if first else '') + f'  batch {idx + 1}/'
              f'{len(self.dataloader)}: ' + ', '.join(parts), flush=True)


def split_report_keys(attacks: Sequence[Union[dict, str]]):
    """Take ``restarts`` and ``after`` out of attack entries, checked.

    An entry is an attack config (``dict(type='PGD', eps=8, name=...)``, or
    a type name) with the optional keys ``restarts`` and ``after``, or the
    same with the attack config apart:
    ``dict(attack=dict(type='PGD', eps=8), name=..., restarts=..., after=...)``
    (the form to use in a config of ``NoFrostRunner``, whose key check
    knows only the attack's own arguments).

    Args:
        attacks (Sequence[dict | str]): Attack entries.

    Returns:
        tuple: the attack configs with their optional ``name`` (for
        :func:`build_attacks`), the restarts per attack and the ``after``
        name (or None) per attack.
    """
    if isinstance(attacks, (str, dict)) or not isinstance(attacks, Sequence):
        raise TypeError('test_cfg.attacks must be a list of attack configs, '
                        f'got {attacks!r}')
    cfgs, restarts, after, names = [], [], [], {'clean'}
    for entry in attacks:
        entry = dict(type=entry) if isinstance(entry, str) else dict(entry)
        n = entry.pop('restarts', 1)
        prev = entry.pop('after', None)
        if 'attack' in entry:
            cfg = dict(entry.pop('attack'))
            if 'name' in entry:
                cfg['name'] = entry.pop('name')
            if entry:
                raise ValueError(f'attack entry {entry}: unknown key(s) '
                                 f'{sorted(entry)} beside attack, name, '
                                 'restarts, after')
        else:
            cfg = entry
        name = attack_name(cfg) if cfg.get('type') else repr(cfg)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f'attack {name}: restarts must be an int >= 1, '
                             f'got {n!r}')
        if prev is not None and prev not in names:
            raise ValueError(f'attack {name}: after={prev!r} is not the name '
                             f'of an earlier result ({sorted(names)})')
        names.add(name)
        if n > 1:
            if restart_name(name, n) in names:
                raise ValueError(f'attack {name}: result name '
                                 f'{restart_name(name, n)!r} is used twice')
            names.add(restart_name(name, n))
        cfgs.append(cfg)
        restarts.append(n)
        after.append(prev)
    return cfgs, restarts, after
