"""RobustTestLoop on a cluster: no cuDNN autotuning while attacking; the ranks meet
outside any collective before the results are gathered."""

import logging
from types import SimpleNamespace

import torch
import torch.nn as nn
from mmpretrain.structures import DataSample

import nofrost_mm  # noqa: F401
from nofrost_mm.attacks import NormalizedClassifier
from nofrost_mm.engine.runner import robust_test_loop as rtl
from nofrost_mm.utils import LogOnce, cudnn_autotuning
from nofrost_mm.utils.progress import NO_PROGRESS


class _SpyAttack:
    """Records the autotuning flag each call sees; breaks nothing."""

    def __init__(self):
        self.seen = []

    def __call__(self, model, images, labels, keys=None):
        self.seen.append(torch.backends.cudnn.benchmark)
        return images


class _Linear(nn.Module):
    """A classifier answering mmpretrain's ``mode='tensor'`` call."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3 * 4 * 4, 10)

    def forward(self, x, mode='tensor'):
        return self.fc(x.flatten(1))


def _loop(attack):
    loop = rtl.RobustTestLoop.__new__(rtl.RobustTestLoop)
    loop._runner = SimpleNamespace(call_hook=lambda *a, **k: None)
    loop.evaluator = SimpleNamespace(process=lambda **k: None)
    loop.seed, loop.fp16, loop.reporter = 0, False, NO_PROGRESS
    loop._log_once = LogOnce(logging.INFO)
    loop.attacks, loop.result_names, loop.start_from = [('spy', attack, {})], ['spy'], ['clean']
    loop.restarts = [1]
    loop._batch_sampler = SimpleNamespace(chunk_ids=[0])
    return loop


def test_attacks_run_without_cudnn_autotuning_and_training_keeps_it():
    net = NormalizedClassifier(_Linear().eval())
    inputs = torch.randint(0, 256, (6, 3, 4, 4), dtype=torch.uint8)
    labels = net(inputs.float() / 255).argmax(1)  # all correct: all attacked
    samples = [
        DataSample(metainfo=dict(sample_idx=i)).set_gt_label(int(label))
        for i, label in enumerate(labels)
    ]
    batch = dict(inputs=inputs, data_samples=samples)
    attack = _SpyAttack()
    with cudnn_autotuning(True):  # as env_cfg.cudnn_benchmark=True sets it for training
        results = _loop(attack).run_iter(0, batch, net)
        assert torch.backends.cudnn.benchmark  # restored after the batch
    assert attack.seen == [False]
    assert all(r['robust_correct']['spy'] for r in results)


def test_the_loop_meets_the_ranks_before_gathering(monkeypatch):
    calls = []
    monkeypatch.setattr(rtl, 'wait_for_ranks', lambda name: calls.append(('wait', name)))

    class _Evaluator:
        def evaluate(self, size):
            calls.append(('evaluate', size))
            return {}

    loop = _loop(_SpyAttack())
    loop._runner = SimpleNamespace(call_hook=lambda *a, **k: None, model=nn.Linear(2, 2))
    loop.attacks = []
    loop.result_names, loop.start_from, loop.cascade = [], [], True
    loop.evaluator, loop.dataloader, loop.state = _Evaluator(), [], None
    loop.progress_interval = None
    loop._batch_sampler = SimpleNamespace(chunk_ids=[], total=0)
    monkeypatch.setattr(
        rtl.NormalizedClassifier, 'from_preprocessor', staticmethod(lambda model: nn.Identity())
    )
    monkeypatch.setattr(loop, '_open_state', lambda: None, raising=False)
    loop.run()
    assert calls == [('wait', 'robust test'), ('evaluate', 0)]


def test_cudnn_autotuning_restores_the_flag_after_an_error():
    before = torch.backends.cudnn.benchmark
    try:
        with cudnn_autotuning(not before):
            assert torch.backends.cudnn.benchmark is (not before)
            raise RuntimeError('attack failed')
    except RuntimeError:
        pass
    assert torch.backends.cudnn.benchmark is before
