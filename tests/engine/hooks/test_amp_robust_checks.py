"""Robust validation and the catastrophic-overfitting guard under fp16 / bf16 autocast.

On the tiny BN ResNet at logits x10 (naive fp16 autocast zeroes most of its
input-gradient entries), the hooks' attacks run inside CPU autocast must
break as many of the 360 test digits as in fp32 (at most 1 point more
robust accuracy, the mean of two random starts), and their decisions
(clean accuracy, misclassified or not) are fp32's exactly. PGD has 5
steps, the hook's default validation attack.
"""

from types import SimpleNamespace

import pytest
import torch
from mmpretrain.structures import DataSample

from nofrost_mm.engine.hooks import AdversarialTrainingHook, CatastrophicOverfittingHook
from tests.attacks.toy import confident_classifier, digits_8x8

# compares float results: run under other CPUs' float paths too
# (tools/misc/portability_check.sh selects `-m numerics`)
pytestmark = pytest.mark.numerics

N = 360  # the whole test split
SEEDS = (0, 1)
PRE = dict(type='PGDDataPreprocessor', eps=8, attack=dict(type='FGSMRS'))
DTYPES = [None, torch.float16, torch.bfloat16]


@pytest.fixture(scope='module')
def model():
    return confident_classifier(10.0, data_preprocessor=PRE)


@pytest.fixture(scope='module')
def dataset():
    """The 8x8 test digits as a dataset gives them (uint8 CHW, DataSample)."""
    x, y = digits_8x8(N, 'test')
    pixels = (x * 255).round().to(torch.uint8)
    return [
        dict(inputs=img, data_samples=DataSample().set_gt_label(int(label)))
        for img, label in zip(pixels, y)
    ]


def _autocast(dtype):
    return torch.autocast('cpu', dtype=dtype or torch.float16, enabled=dtype is not None)


class _Collect:
    """Stands in for the robust evaluator: keeps the robust predictions."""

    def __init__(self):
        self.samples = []

    def process(self, data_samples, data_batch=None):
        self.samples += data_samples

    def accuracy(self):
        return (
            100.0
            * sum(int(s.pred_label) == int(s.gt_label) for s in self.samples)
            / len(self.samples)
        )


def _robust_validation(model, dataset, dtype):
    """Mean robust accuracy over SEEDS, and the precision the attack ran in."""
    hook = AdversarialTrainingHook(val_attack=dict(type='PGDAttack', eps=8, steps=5))
    runner = SimpleNamespace(model=model)
    batch = dict(
        inputs=[d['inputs'] for d in dataset], data_samples=[d['data_samples'] for d in dataset]
    )
    with torch.no_grad():
        outputs = model.val_step(batch)  # the clean predictions, fp32
    accuracy = 0.0
    for seed in SEEDS:
        hook._robust_evaluator = collect = _Collect()
        torch.manual_seed(seed)
        with _autocast(dtype):  # as if the whole validation ran under autocast
            hook.after_val_iter(runner, 0, batch, outputs)
        accuracy += collect.accuracy() / len(SEEDS)
    return accuracy, model.data_preprocessor.last_attack_precision


def test_robust_validation_under_autocast_is_as_strong(model, dataset):
    fp32, ran = _robust_validation(model, dataset, None)
    assert ran == 'fp32' and fp32 < 80
    for dtype, name in ((torch.float16, 'fp16'), (torch.bfloat16, 'bf16')):
        robust, ran = _robust_validation(model, dataset, dtype)
        # under bf16 PGD's survivors take an fp32 step (fp32_polish)
        expected = 'bf16 (polish fp32)' if name == 'bf16' else name
        assert ran == expected and robust <= fp32 + 1, (name, robust, fp32)


def test_guard_checks_under_autocast_are_as_strong(model, dataset):
    runner = SimpleNamespace(
        model=model,
        val_loop=object(),
        val_dataloader=SimpleNamespace(dataset=dataset, batch_size=N),
    )
    results = {dtype: [] for dtype in DTYPES}
    for seed in SEEDS:  # the guard reseeds its attacks with its seed
        hook = CatastrophicOverfittingHook(num_samples=N, eps=8, pgd_steps=5, seed=seed)
        hook.before_run(runner)
        hook.before_train(runner)
        for dtype in DTYPES:
            with _autocast(dtype):
                results[dtype].append(hook.measure(runner))
    mean = {
        dtype: {k: sum(r[k] for r in rs) / len(rs) for k in rs[0]} for dtype, rs in results.items()
    }
    fp32 = mean[None]
    assert fp32['pgd'] < 80 and fp32['fgsm'] < 85
    for dtype in DTYPES[1:]:
        got = mean[dtype]
        assert got['clean'] == fp32['clean']  # decided in fp32
        assert got['pgd'] <= fp32['pgd'] + 1 and got['fgsm'] <= fp32['fgsm'] + 1, (dtype, got, fp32)
