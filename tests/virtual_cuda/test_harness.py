"""Negative controls: the virtual CUDA device catches the bugs it is for.

Each test injects one bug into a real attack and asserts that the harness
fails on it (a CUDA build would raise there, or sync in a loop), and that
the same attack without the bug passes.
"""

import pytest
import torch

from nofrost_mm.attacks import PGDAttack, attack_context
from .tiny import eval_net
from .vcuda import DeviceMixError, VEvent, is_vcuda, virtual_cuda


def run_pgd(steps: int = 2, **kwargs):
    with virtual_cuda() as seen:
        model, net, images, labels, keys = eval_net()
        start = len(seen.syncs)
        with attack_context(model):
            adv = PGDAttack(eps=8, steps=steps, **kwargs)(net, images, labels)
    return adv, seen, start


def test_the_clean_attack_passes():
    adv, seen, _ = run_pgd()
    assert is_vcuda(adv) and not seen.mismatches


def _no_device(self, images, bound, keys):
    return torch.empty(images.shape).uniform_(-bound, bound)  # no device=


def _cpu_generator(self, images, bound, keys):
    g = torch.Generator().manual_seed(0)
    return torch.empty_like(images).uniform_(-bound, bound, generator=g)


def _cpu_generator_factory(self, images, bound, keys):
    g = torch.Generator().manual_seed(0)
    return torch.rand(images.shape, generator=g, device=images.device) * 2 * bound - bound


def _labels_to_host(self, labels, logits, keys=None):
    return labels.cpu()


@pytest.mark.parametrize(
    'method,bug',
    [
        ('_uniform', _no_device),
        ('_uniform', _cpu_generator),
        ('_uniform', _cpu_generator_factory),
        ('_targets', _labels_to_host),
    ],
    ids=[
        'tensor-without-device',
        'cpu-generator',
        'cpu-generator-in-factory',
        'labels-moved-to-host',
    ],
)
def test_a_device_bug_fails(monkeypatch, method, bug):
    monkeypatch.setattr(PGDAttack, method, bug)
    with pytest.raises(DeviceMixError, match='cuda'):
        run_pgd()


def test_a_sync_per_step_is_counted_at_its_line(monkeypatch):
    _, clean, start = run_pgd(steps=4)
    step = PGDAttack._step

    def reads_the_gradient(self, delta, grad, alpha, eps):
        if float(grad.abs().max()) == 0:  # the bug: a host read every step
            return delta
        return step(self, delta, grad, alpha, eps)

    monkeypatch.setattr(PGDAttack, '_step', reads_the_gradient)
    _, buggy, start_buggy = run_pgd(steps=4)
    extra = len(buggy.own_syncs(start_buggy)) - len(clean.own_syncs(start))
    assert extra == 4
    # attributed to the injected line (this file is not the plug-in's: the
    # harness counts it under its own site, not the attack's)
    assert (
        sum(
            n
            for (site, _), n in buggy.by_site(start_buggy, own_only=False).items()
            if 'test_harness.py' in site
        )
        == 4
    )


def test_a_host_to_device_copy_in_the_plugin_is_counted(monkeypatch):
    """A constant moved host-to-device on every call (the class-subset bug)."""
    _, clean, start = run_pgd()
    step = PGDAttack._step

    def copies(self, delta, grad, alpha, eps):
        scale = torch.ones(delta.size(0)).to(delta.device)
        return step(self, delta, grad, alpha, eps) * scale.view(-1, 1, 1, 1)

    monkeypatch.setattr(PGDAttack, '_step', copies)
    _, buggy, start_buggy = run_pgd()
    kinds = [s.kind for s in buggy.syncs[start_buggy:]]
    assert kinds.count('host-to-device .to(cuda)') == 2


def test_an_event_read_before_the_device_finished_fails():
    start, end = VEvent(enable_timing=True), VEvent(enable_timing=True)
    start.record()
    end.record()
    with pytest.raises(RuntimeError, match='synchronize'):
        start.elapsed_time(end)
    with virtual_cuda() as seen:
        end.synchronize()
    assert start.elapsed_time(end) >= 0
    assert [s.kind for s in seen.syncs] == ['torch.cuda.Event.synchronize()']
