"""The evaluation paths on the virtual CUDA device: both robust test loops,
robust validation, the catastrophic-overfitting guard, the class-subset
logits and the analysis tools."""

import collections
import copy
import logging
from types import SimpleNamespace

import torch

from nofrost_mm.attacks import (
    APGDAttack,
    AutoAttack,
    FABAttack,
    NormalizedClassifier,
    PGDAttack,
    SquareAttack,
    attack_context,
    build_attacks,
)
from nofrost_mm.utils.log_once import LogOnce
from nofrost_mm.utils.progress import NO_PROGRESS
from .tiny import N, at_model, batch, build, eval_net, on_device
from .vcuda import is_vcuda, virtual_cuda


def _small_autoattack():
    aa = AutoAttack(eps=1)
    aa.members = [
        ('apgd-ce', APGDAttack(eps=1, steps=3)),
        ('apgd-t', APGDAttack(eps=1, steps=3, loss='dlr-targeted', n_target_classes=3)),
        ('fab-t', FABAttack(eps=1, steps=3, n_target_classes=3)),
        ('square', SquareAttack(eps=1, n_queries=30)),
    ]
    return aa


def _loop(cls, attacks, **extra):
    """A test loop without runner or dataloader: what run_iter reads."""
    processed = []
    loop = cls.__new__(cls)
    loop._runner = SimpleNamespace(call_hook=lambda *a, **k: None)
    loop.evaluator = SimpleNamespace(
        process=lambda data_samples, data_batch: processed.extend(data_samples)
    )
    loop.attacks = build_attacks(attacks)
    names = [name for name, _, _ in loop.attacks]
    loop.result_names, loop.start_from = names, ['clean'] * len(names)
    loop.restarts = [1] * len(names)
    loop.fp16, loop.seed, loop.cascade = False, 0, False
    loop.reporter, loop._precisions = NO_PROGRESS, {}
    loop._log_once = LogOnce(logging.INFO)
    loop._batch_sampler = SimpleNamespace(chunk_ids=[0])
    loop.__dict__.update(extra)
    return loop, processed


def _correct_batch(net):
    """A batch labelled with the model's own predictions (all attacked)."""
    data = batch()
    with torch.no_grad():
        images = torch.stack(data['inputs']).to('cuda').float() / 255.0
        return batch(labels=net(images).argmax(1).cpu())


def test_robust_test_loop_on_cuda():
    from nofrost_mm.engine.runner.robust_test_loop import RobustTestLoop

    with virtual_cuda() as seen:
        model = on_device(build().eval())
        net = NormalizedClassifier.from_preprocessor(model).eval()
        loop, processed = _loop(
            RobustTestLoop,
            [
                dict(type='PGDAttack', eps=8, steps=2, name='PGD-2'),
                dict(type='PGD', eps=8, alpha=2, steps=2, name='ta-PGD'),
            ],
        )
        loop.attacks.append(('AA', _small_autoattack(), {}))
        loop.result_names.append('AA')
        loop.start_from.append('clean')
        loop.restarts.append(1)
        data = _correct_batch(net)
        start = len(seen.syncs)
        loop.run_iter(0, data, net)
    assert not seen.mismatches and len(processed) == N
    assert set(processed[0]['robust_correct']) == {'clean', 'PGD-2', 'ta-PGD', 'AA'}
    assert all(r['robust_correct']['clean'] for r in processed)
    # the loop's own reads do not grow with the samples: one per attack to
    # pick its survivors, one copy of the results (was a read per sample
    # and result)
    sites = collections.Counter(
        s.site for s in seen.own_syncs(start) if 'robust_test_loop.py' in s.site
    )
    assert max(sites.values()) <= len(loop.attacks), sites


def test_robustness_report_loop_on_cuda():
    from nofrost_mm.engine.runner.robustness_report_loop import RobustnessReportLoop

    with virtual_cuda() as seen:
        model = on_device(build().eval())
        net = NormalizedClassifier.from_preprocessor(model).eval()
        loop, processed = _loop(
            RobustnessReportLoop,
            [dict(type='PGDAttack', eps=8, steps=2, name='PGD-2')],
            restarts=[2],
            progress=False,
        )
        loop.run_iter(0, _correct_batch(net), net)
    assert not seen.mismatches and len(processed) == N
    assert all(r['margin'] > 0 and r['grad_l1'] >= 0 for r in processed)


def test_catastrophic_overfitting_guard_measures_on_cuda():
    from nofrost_mm.engine.hooks import CatastrophicOverfittingHook

    with virtual_cuda() as seen:
        model = at_model()
        hook = CatastrophicOverfittingHook(num_samples=N)
        hook.pgd = PGDAttack(eps=8, steps=2)
        hook.fgsm = PGDAttack(eps=8, steps=1, random_start=False, step_size=8)
        hook._batches = [batch()]
        hook._total = N
        accuracies = hook.measure(SimpleNamespace(model=model))
    assert not seen.mismatches
    assert set(accuracies) == {'clean', 'pgd', 'fgsm'}


def test_robust_validation_on_cuda():
    from nofrost_mm.engine.hooks import AdversarialTrainingHook

    processed = []
    with virtual_cuda() as seen:
        model = at_model().eval()
        hook = AdversarialTrainingHook(val_attack=dict(type='PGDAttack', eps=8, steps=2))
        hook._robust_evaluator = SimpleNamespace(
            process=lambda data_samples, data_batch: processed.extend(data_samples)
        )
        data = batch()
        with torch.no_grad():
            outputs = model.val_step(copy.deepcopy(data))
        hook.after_val_iter(SimpleNamespace(model=model), 0, data, outputs)
    assert not seen.mismatches and len(processed) == N


def test_class_subset_logits_on_cuda():
    from nofrost_mm.engine.hooks.class_subset_hook import ClassSubsetLogits

    with virtual_cuda() as seen:
        model, net, images, labels, keys = eval_net()
        ClassSubsetLogits(model.head, [1, 3, 5, 7], num_outputs=10)
        with torch.no_grad():
            labels = net(images).argmax(1)
        start = len(seen.syncs)
        with attack_context(model):
            adv = PGDAttack(eps=8, steps=5)(net, images, labels, keys=keys)
        assert net(adv).shape == (N, 4)
    assert not seen.mismatches
    # the subset's indices are on the device once, not copied every forward
    copies = [s for s in seen.syncs[start:] if s.kind.startswith('host-to-device')]
    assert copies == []


def test_analysis_tools_on_cuda():
    from nofrost_mm.evaluation import robustness_analysis as ra

    with virtual_cuda() as seen:
        model, net, images, labels, keys = eval_net()
        margins = ra.logit_margins(net, images, labels)
        grads = ra.input_gradient_norms(net, images, labels)
        start = len(seen.syncs)
        dist = ra.boundary_distances(net, images, labels, 8.0, 2, 2)
        lip = ra.local_lipschitz(net, images, 8.0, 2)
    assert not seen.mismatches
    assert not is_vcuda(margins) and bool((margins > 0).all())  # clean-correct
    assert is_vcuda(grads) and is_vcuda(dist) and is_vcuda(lip)
    assert bool((dist > 0).all()) and bool((lip >= 0).all())
    # the bisection reads nothing on the host: the PGD attack and the key
    # check are all that sync
    sites = {s.site.split(':')[0] for s in seen.own_syncs(start)}
    assert 'nofrost_mm/evaluation/robustness_analysis.py' not in sites, sites
