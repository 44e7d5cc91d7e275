"""Which epochs validate robustness: the official NoFrost and NoFrost* rules."""

from types import SimpleNamespace

import pytest
from mmengine.config import Config

from nofrost_mm.engine.hooks import AdversarialTrainingHook
from tests.conftest import REPO_ROOT


def _robust_epochs(config):
    cfg = Config.fromfile(str(REPO_ROOT / config))
    kwargs = dict(next(h for h in cfg.custom_hooks if h['type'] == 'AdversarialTrainingHook'))
    kwargs.pop('type')
    hook = AdversarialTrainingHook(**kwargs)
    total = cfg.train_cfg.max_epochs
    runner = SimpleNamespace(max_epochs=total, epoch=0)
    hook.before_train(runner)
    due = []
    for done in range(1, total + 1):
        runner.epoch = done  # epochs done when the validation after one runs
        if hook._robust_val_due(runner):
            due.append(done)
    return due, kwargs['val_attack']


def test_nofrost_validates_after_the_official_epochs_with_the_training_step():
    # PGDAT.py, 0-based: epoch % 10 == 0 or epoch >= int(0.9 * 90)
    official = [e + 1 for e in range(90) if e % 10 == 0 or e >= int(0.9 * 90)]
    for config in (
        'configs/nofrost/nf-resnet50_8xb32_in1k_pgdat.py',
        'configs/nofrost/resnet50_8xb32_in1k_pgdat.py',
    ):
        due, attack = _robust_epochs(config)
        assert due == official == [1, 11, 21, 31, 41, 51, 61, 71, 81, *range(82, 91)]
        assert attack == dict(type='PGDAttack', steps=5, step_size=1)


def test_official_nofrost_star_validates_after_its_epochs():
    # CRT_TDAT.py, 0-based: epoch % 7 == 0 or epoch >= int(0.8 * 30)
    official = [e + 1 for e in range(30) if e % 7 == 0 or e >= int(0.8 * 30)]
    due, attack = _robust_epochs('configs/nofrost/nf-resnet50_8xb32_in1k_nofrost-star-official.py')
    assert due == official == [1, 8, 15, 22, 25, 26, 27, 28, 29, 30]
    assert attack == dict(type='PGDAttack', steps=10, step_size=1)


def test_default_offset_keeps_multiples_of_the_interval():
    hook = AdversarialTrainingHook(adv_val_interval=10, adv_val_last=0.1)
    runner = SimpleNamespace(max_epochs=90, epoch=0)
    hook.before_train(runner)
    due = [
        d for d in range(1, 91) if not setattr(runner, 'epoch', d) and hook._robust_val_due(runner)
    ]
    assert due == [10, 20, 30, 40, 50, 60, 70, 80, *range(82, 91)]


@pytest.mark.parametrize(
    'offset, error, message',
    [
        (-1, ValueError, r'adv_val_offset=-1 is out of range; allowed: \[0, inf\)'),
        (1.5, TypeError, 'adv_val_offset must be an int'),
        (True, TypeError, 'adv_val_offset must be an int'),
    ],
)
def test_bad_offset_names_the_key(offset, error, message):
    with pytest.raises(error, match=message):
        AdversarialTrainingHook(adv_val_offset=offset)


def test_a_validation_outside_training_is_always_robust():
    """runner.val() (before or after runner.train()) measures robustness."""
    hook = AdversarialTrainingHook(adv_val_interval=10, adv_val_last=0.0)
    runner = SimpleNamespace(max_epochs=90, epoch=3)
    assert hook._robust_val_due(runner)
    hook.before_train(runner)
    assert not hook._robust_val_due(runner)
    hook.after_train(runner)
    assert hook._robust_val_due(runner)
