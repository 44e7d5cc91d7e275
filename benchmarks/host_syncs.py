"""Host-device syncs of the training and evaluation hot loops, counted per line.

Runs on a CPU-only machine through the test suite's virtual CUDA device
(``tests/virtual_cuda/vcuda.py``: tensors that compute on the CPU but report
``cuda:0``, every read of a device value recorded with the plug-in's
file:line). Prints, for each scenario, the plug-in's own syncs (mmengine's
batch transfer and logger reads are left out) by site:

- one AT iteration (AdversarialTrainingHook + ``train_step``) of PGD-10 on an
  NF-ResNet-18 with AGC, and the logger's read of three logged values;
- early-exit PGD-10, APGD-CE, APGD-T, FAB-T and Square on 16 images of a
  tiny net whose predictions depend on the image.

The budgets are asserted by ``tests/virtual_cuda/test_sync_budget.py``.

Example:
    python benchmarks/host_syncs.py
"""

import collections
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from nofrost_mm.attacks import APGDAttack, FABAttack, PGDAttack, SquareAttack, attack_context  # noqa: E402
from tests.virtual_cuda.test_sync_budget import _at_iterations, _sharp_net  # noqa: E402
from tests.virtual_cuda.vcuda import virtual_cuda  # noqa: E402


def show(title, syncs, iterations=None):
    per = f' ({len(syncs) / iterations:.2f} per {iterations} iterations)' if iterations else ''
    print(f'== {title}: {len(syncs)} own syncs{per}')
    sites = collections.Counter((s.site.split(' (in')[0], s.kind) for s in syncs)
    for (site, kind), n in sites.most_common(8):
        print(f'   {n:4d} {site} [{kind}]')


def main():
    torch.set_num_threads(1)
    per_iteration, _, log_syncs, params = _at_iterations(steps=10, iterations=2)
    show(
        f'AT iteration, PGD-10, NF-ResNet-18 w8 + AGC ({params} parameter tensors)',
        per_iteration[-1],
    )
    show('logger iteration: reading train/agc_clip_ratio, attack_time_share, loss_adv', log_syncs)
    for name, attack, iterations in (
        ('PGD-10 early exit', PGDAttack(eps=2, steps=10, early_exit=True), 10),
        ('APGD-CE, 40 steps', APGDAttack(eps=4, steps=40), 40),
        (
            'APGD-T, 40 steps, 3 targets in one pass',
            APGDAttack(eps=4, steps=40, loss='dlr-targeted', n_target_classes=3),
            40,
        ),
        (
            'FAB-T, 40 steps, 3 targets in one pass',
            FABAttack(eps=4, steps=40, n_target_classes=3),
            40,
        ),
        ('Square, 100 queries', SquareAttack(eps=4, n_queries=100), None),
    ):
        calls = []
        with virtual_cuda() as seen:
            model, net, images, labels, keys = _sharp_net()

            def counted(x, net=net):
                calls.append(len(x))
                return net(x)

            start = len(seen.syncs)
            with attack_context(model):
                adv = attack(counted, images, labels, keys=keys)
            syncs = seen.own_syncs(start)
            broken = int((net(adv).argmax(1) != labels).sum())
        show(
            f'{name} ({len(labels)} images, {broken} broken, {len(calls)} model calls)',
            syncs,
            iterations or len(calls),
        )


if __name__ == '__main__':
    main()
