"""RobustTestLoop under autocast: fp32 decisions, fp32 re-run after an fp16 overflow."""

import logging

import torch
import torch.nn as nn

import nofrost_mm  # noqa: F401
from nofrost_mm.attacks import PGDAttack, fp32_predict
from nofrost_mm.engine.runner import robust_test_loop as rtl
from nofrost_mm.utils import LogOnce, sample_keys
from nofrost_mm.utils.progress import NO_PROGRESS
from tests.conftest import logged_warnings


class _Overflowing(nn.Module):
    """Finite fp16 logits, but a backward gain beyond fp16's range."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin1 = nn.Linear(3 * 4 * 4, 16)
        self.lin2 = nn.Linear(16, 10)
        with torch.no_grad():  # logits of a few units, gradients through 2e4
            self.lin1.weight.mul_(2e-4)
            self.lin1.bias.zero_()
            self.lin2.weight.mul_(2e4)
        self.requires_grad_(False)

    def forward(self, x):
        return self.lin2(self.lin1(x.flatten(1)))


def _loop(monkeypatch, dtype):
    # mmengine's autocast is bf16-only on a CPU: the loop's fp16 path as on CUDA
    monkeypatch.setattr(
        rtl, 'autocast', lambda enabled=True: torch.autocast('cpu', dtype=dtype, enabled=enabled)
    )
    loop = rtl.RobustTestLoop.__new__(rtl.RobustTestLoop)
    loop.fp16, loop.reporter, loop._precisions = True, NO_PROGRESS, {}
    loop._log_once = LogOnce(logging.INFO)
    return loop


def test_an_fp16_overflow_reruns_the_attack_in_fp32(monkeypatch):
    from mmengine.logging import MMLogger

    net = _Overflowing()
    x = torch.rand(16, 3, 4, 4)
    y = fp32_predict(net, x)
    keys = sample_keys(0, range(16))
    attack = PGDAttack(eps=32, steps=5)
    expected = fp32_predict(net, attack(net, x, y, keys=keys)) == y
    assert not expected.all()  # the fp32 attack breaks samples

    loop = _loop(monkeypatch, torch.float16)
    survived = torch.ones(16, dtype=torch.bool)
    with logged_warnings(MMLogger.get_current_instance()) as warnings:
        loop.attack_survivors(net, attack, x, y, keys, survived, seed=0)
    assert torch.equal(survived, expected)
    assert loop._precisions[id(attack)] == 'fp16+fp32'
    assert len(warnings) == 1 and 'overflowed in fp16' in warnings[0]


def test_no_overflow_no_rerun_and_the_decision_is_fp32(monkeypatch):
    net = _Overflowing()
    with torch.no_grad():
        net.lin2.weight.div_(2e4)
        net.lin1.weight.mul_(5e3)  # an ordinary gain
    x = torch.rand(16, 3, 4, 4)
    y = fp32_predict(net, x)
    keys = sample_keys(0, range(16))
    attack = PGDAttack(eps=32, steps=5)
    loop = _loop(monkeypatch, torch.bfloat16)
    survived = torch.ones(16, dtype=torch.bool)
    calls = []
    monkeypatch.setattr(
        rtl,
        'fp32_predict',
        lambda m, a: calls.append(torch.is_autocast_enabled('cpu')) or fp32_predict(m, a),
    )
    loop.attack_survivors(net, attack, x, y, keys, survived, seed=0)
    assert loop._precisions[id(attack)] == 'bf16 (polish fp32)' and calls == [False]
