"""Robust validation attacks without cuDNN autotuning; training keeps it."""

from types import SimpleNamespace

import torch

import nofrost_mm  # noqa: F401
from nofrost_mm.engine.hooks import adversarial_training_hook as ath
from nofrost_mm.utils import cudnn_autotuning
from tests.engine.hooks.stock_lenet5 import stock_lenet5_classifier


def test_robust_validation_attacks_without_autotuning(monkeypatch):
    from mmpretrain.structures import DataSample

    model = stock_lenet5_classifier()
    torch.manual_seed(0)
    batch = dict(
        inputs=[torch.randint(0, 256, (1, 32, 32), dtype=torch.uint8) for _ in range(4)],
        data_samples=[DataSample().set_gt_label(label) for label in range(4)],
    )
    with torch.no_grad():
        outputs = model.val_step(batch)
    seen = []
    survivors = ath.attack_survivors

    def spy(attack, *args, **kwargs):
        seen.append(torch.backends.cudnn.benchmark)
        return survivors(attack, *args, **kwargs)

    monkeypatch.setattr(ath, 'attack_survivors', spy)
    hook = ath.AdversarialTrainingHook(val_attack=dict(type='PGDAttack', steps=1))
    hook._robust_evaluator = SimpleNamespace(process=lambda data_samples, data_batch: None)
    with cudnn_autotuning(True):  # env_cfg.cudnn_benchmark=True for training
        hook.after_val_iter(SimpleNamespace(model=model), 0, batch, outputs)
        assert torch.backends.cudnn.benchmark
    assert seen == [False]
