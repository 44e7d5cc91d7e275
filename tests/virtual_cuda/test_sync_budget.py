"""Host-sync budgets on the virtual CUDA device.

A GPU runs ahead of Python until the host reads a value from it; each read
(``.item()``, ``bool(tensor)``, a boolean mask, ``torch.cuda.synchronize``)
stalls the pipeline. The budgets count the plug-in's own reads
(``Recorder.own_syncs``): mmengine's batch transfer and its logger's loss
reads are mmengine's business.
"""

from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub, MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from nofrost_mm.attacks import APGDAttack, FABAttack, PGDAttack, SquareAttack, attack_context
from nofrost_mm.engine.hooks import AdversarialTrainingHook
from nofrost_mm.utils import sample_keys
from .tiny import NF_BACKBONE, at_model, batch
from .vcuda import to_vcuda, virtual_cuda

# one AT iteration outside the logger's iterations: the attack's input-range
# check, at most one more
AT_ITERATION_BUDGET = 2


def _nf_backbone(depth: int) -> dict:
    return dict(NF_BACKBONE, depth=depth)


def _at_iterations(steps: int, depth: int = 18, iterations: int = 3):
    """Own syncs of each of ``iterations`` AT iterations (hook + train_step)
    of PGD-``steps`` on an NF-ResNet with AGC, and of the logger's read."""
    init_default_scope('mmpretrain')
    hub = MessageHub.get_instance(f'sync-budget-{steps}-{depth}')
    with virtual_cuda() as seen:
        model = at_model(backbone=_nf_backbone(depth), attack=dict(type='PGDAttack', steps=steps))
        wrapper = build_optim_wrapper(
            model,
            dict(
                type='AGCOptimWrapper',
                optimizer=dict(type='SGD', lr=0.01, momentum=0.9),
                clip_grad=dict(type='agc', clip_factor=0.01),
            ),
        )
        wrapper.message_hub = hub
        wrapper.set_agc_model(model)
        hook = AdversarialTrainingHook()
        runner = SimpleNamespace(
            model=model,
            message_hub=hub,
            epoch=0,
            iter=0,
            train_dataloader=[None] * 10,
            max_epochs=1,
            logger=MMLogger.get_current_instance(),
        )
        hook.before_run(runner)
        per_iteration = []
        for i in range(iterations):
            runner.iter = i
            start = len(seen.syncs)
            data = batch(idx0=i)
            hook.before_train_iter(runner, i, data)
            outputs = model.train_step(data, wrapper)
            hook.after_train_iter(runner, i, data, outputs)
            per_iteration.append(seen.own_syncs(start))
        start = len(seen.syncs)
        # what the logger reads at its iteration
        logged = {
            key: hub.get_scalar(key).mean(iterations)
            for key in ('train/agc_clip_ratio', 'train/attack_time_share', 'train/loss_adv')
        }
        log_syncs = seen.own_syncs(start) + [s for s in seen.syncs[start:] if not s.own]
    assert not seen.mismatches
    return per_iteration, logged, log_syncs, len(list(model.parameters()))


@pytest.fixture(scope='module')
def pgd2():
    return _at_iterations(steps=2)


def test_an_at_iteration_stays_within_the_budget(pgd2):
    per_iteration, logged, log_syncs, _ = pgd2
    for syncs in per_iteration:
        assert len(syncs) <= AT_ITERATION_BUDGET, [f'{s.site} {s.kind}' for s in syncs]
    # the values still reach the log: read together, at the logger's turn
    assert 0 <= logged['train/agc_clip_ratio'] <= 1
    assert 0 < logged['train/attack_time_share'] <= 1
    assert logged['train/loss_adv'] > 0
    assert 1 <= len(log_syncs) <= 3


def test_the_budget_does_not_grow_with_steps_or_parameters(pgd2):
    per_iteration, _, _, params = pgd2
    more_steps, _, _, _ = _at_iterations(steps=10, iterations=1)
    deeper, _, _, more_params = _at_iterations(steps=2, depth=34, iterations=1)
    assert more_params > params
    assert len(more_steps[0]) == len(deeper[0]) == len(per_iteration[-1])


@pytest.mark.parametrize('autocast', [False, True], ids=['fp32', 'autocast'])
@pytest.mark.parametrize('steps', [3, 9])
def test_early_exit_pgd_reads_the_host_once_per_step_at_most(monkeypatch, steps, autocast):
    """Also under autocast, where the candidates of a step are confirmed in
    fp32 before they leave (the virtual device has no CUDA autocast: the
    attack is told it runs under one)."""
    from nofrost_mm.attacks import pgd

    if autocast:
        monkeypatch.setattr(pgd, 'autocast_dtype', lambda device_type: torch.bfloat16)
    with virtual_cuda() as seen:
        model, net, images, labels, keys = _sharp_net(n=8)
        start = len(seen.syncs)
        with attack_context(model):
            adv = PGDAttack(eps=32, steps=steps, early_exit=True)(net, images, labels, keys=keys)
        syncs = seen.own_syncs(start)
        broken = int((net(adv).argmax(1) != labels).sum())
    assert 0 < broken  # samples left the batch
    # the range check, one read per step, one after the last step
    assert len(syncs) <= steps + 2, [f'{s.site} {s.kind}' for s in syncs]


def _sharp_net(n: int = 16):
    """(model, net, images, labels, keys): a conv net of a few ops on the
    device (the counts are the attack's; a deeper net only costs time)
    whose predictions depend on the image, and images it classifies."""
    torch.manual_seed(0)
    net = to_vcuda(
        torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3),
            torch.nn.ReLU(),
            torch.nn.Flatten(),
            torch.nn.Linear(8 * 6 * 6, 10),
        ).eval()
    )
    images = torch.rand(n, 3, 8, 8, device='cuda')
    with torch.no_grad():
        labels = net(images).argmax(1)
    return net, net, images, labels, sample_keys(0, torch.arange(n, device='cuda'))


@pytest.mark.parametrize(
    'name,make',
    [
        ('APGD-CE', lambda: APGDAttack(eps=4, steps=40)),
        ('APGD-T', lambda: APGDAttack(eps=4, steps=40, loss='dlr-targeted', n_target_classes=3)),
        ('FAB-T', lambda: FABAttack(eps=4, steps=40, n_target_classes=3)),
    ],
    ids=['apgd-ce', 'apgd-t', 'fab-t'],
)
def test_apgd_and_fab_read_the_host_less_than_once_a_step(name, make):
    attack = make()
    with virtual_cuda() as seen:
        model, net, images, labels, keys = _sharp_net()
        start = len(seen.syncs)
        with attack_context(model):
            adv = attack(net, images, labels, keys=keys)
        syncs = seen.own_syncs(start)
        broken = int((net(adv).argmax(1) != labels).sum())
    assert 0 < broken < len(labels)  # samples left, others ran every step
    assert len(syncs) <= attack.steps, [f'{s.site} {s.kind}' for s in syncs]


def test_square_reads_the_host_once_a_model_call():
    calls = []
    with virtual_cuda() as seen:
        model, net, images, labels, keys = _sharp_net()

        def counted(x):
            calls.append(len(x))
            return net(x)

        start = len(seen.syncs)
        with attack_context(model):
            adv = SquareAttack(eps=4, n_queries=100)(counted, images, labels, keys=keys)
        syncs = seen.own_syncs(start)
        broken = int((net(adv).argmax(1) != labels).sum())
    assert 0 < broken < len(labels)
    # one read a call (the look-ahead's sizes), one to end, the clean-correct
    # samples and the first call's margins
    assert len(syncs) <= len(calls) + 2, [f'{s.site} {s.kind}' for s in syncs]
    assert len(calls) > 10
