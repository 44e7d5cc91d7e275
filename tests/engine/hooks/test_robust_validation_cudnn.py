"""Robust validation attacks without cuDNN autotuning; training keeps it."""

from types import SimpleNamespace

import torch

import nofrost_mm  # noqa: F401
from nofrost_mm.engine.hooks import adversarial_training_hook as ath
from nofrost_mm.utils import cudnn_autotuning


def test_robust_validation_attacks_without_autotuning(monkeypatch):
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample

    model = MODELS.build(
        dict(
            type='AdvImageClassifier',
            adv_loss_weight=1.0,
            backbone=dict(type='LeNet5', num_classes=10),
            neck=None,
            head=dict(type='ClsHead', loss=dict(type='CrossEntropyLoss')),
            data_preprocessor=dict(
                type='PGDDataPreprocessor',
                eps=76.5,
                mean=[33.46],
                std=[78.87],
                num_classes=10,
                attack=dict(type='FGSMRS', clip_start=False),
            ),
        )
    )
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
