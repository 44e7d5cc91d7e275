"""Every shipped config resolves to the settings it had before the config
tree was reorganised (fixtures/resolved_configs.json, written by
tools/misc/dump_resolved_configs.py), apart from the renames listed here."""

import json
import sys
from pathlib import Path

import pytest
from mmengine.config import Config

from nofrost_mm.utils import follow_training_eps, training_eps

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / 'tools' / 'misc'))
from dump_resolved_configs import flatten, leaf_configs  # noqa: E402

FIXTURE = Path(__file__).parent / 'fixtures' / 'resolved_configs.json'

# old key path -> new key path, each moved key once
RENAMES = {
    # AdvImageClassifier owns the adversarial loss
    'data_preprocessor.adv_loss': 'model.adv_loss',
    'data_preprocessor.adv_loss_weight': 'model.adv_loss_weight',
    'data_preprocessor.trades_beta': 'model.trades_beta',
    'data_preprocessor.adv_forward': 'model.adv_forward',
    # the training eps: one key, which every other attack follows
    'data_preprocessor.attack.eps': 'data_preprocessor.eps',
}
# top-level helper variables of config files (values used by other keys,
# which are compared): not settings of their own
HELPERS = (
    'eps',
    'at_hook',
    'co_guard',
    'backbone',
    'head_loss',
    'adv_model',
    'adv_preprocessor',
    'pgd40',
    'eps_warmup_hook',
)
# settings changed on purpose since the fixture was written: config -> {key: value}
CHANGED = {
    # fast_adversarial's MNIST FGSM takes its gradient at the unclipped start
    f'configs/mnist/{net}_1xb100_mnist_fgsmrs.py': {'data_preprocessor.attack.clip_start': False}
    for net in ('fast-at-cnn', 'fast-at-cnn-bn', 'fast-at-cnn-nf')
}
# the CPU-sized PGD-40 AT warms eps up (at the full eps from the start it
# stayed at chance)
CHANGED['configs/mnist/fast-at-cnn_1xb100_mnist_pgdat.py'] = {
    'custom_hooks[AdversarialTrainingHook].eps_warmup': 3
}
# the ImageNet NoFrost configs validate robustness as the official PGDAT.py:
# PGD-5 with the training step (1/255) after epochs 1, 11, ..., 81, 82-90
for _name in (
    'nf-resnet50_8xb32_in1k_pgdat',
    'resnet50_8xb32_in1k_pgdat',
    'resnet50-nfconv_8xb32_in1k_pgdat',
    'nf-resnet50_8xb32_in1k_nfgsm',
    'resnet50_8xb32_in1k_nfgsm',
    'nf-resnet50_8xb32_in1k_nofrost-star',
):
    CHANGED[f'configs/nofrost/{_name}.py'] = {
        'custom_hooks[AdversarialTrainingHook].adv_val_offset': 1,
        'custom_hooks[AdversarialTrainingHook].val_attack.step_size': 1,
    }
# changed on purpose in every config (configs/_base_/default_runtime.py):
# cuDNN autotuning for training's fixed batch shapes (96845d1)
CHANGED_EVERYWHERE = {'env_cfg.cudnn_benchmark': True}
# keys now written at the component's default where they were absent
DEFAULTED = {
    'custom_hooks[AdversarialTrainingHook].eps_warmup': 0,
    # NoFrostRunner added it at run time; default_runtime.py holds it
    'default_hooks.class_subset.type': 'ClassSubsetHook',
}


def _resolved(cfg) -> dict:
    """The config's settings with the attacks that follow the training eps
    given it, as the hook, the test loop and the guard do at run time."""
    cfg = cfg.to_dict()
    eps = training_eps(cfg)
    for hook in cfg.get('custom_hooks') or []:
        attack = hook.get('val_attack')
        if (
            hook.get('type') == 'AdversarialTrainingHook'
            and isinstance(attack, dict)
            and attack.get('type') == 'PGDAttack'
        ):
            attack.setdefault('eps', eps)
    if 'test_attacks' in cfg:
        cfg['test_attacks'] = follow_training_eps(cfg['test_attacks'], eps)
    return cfg


def _settings(flat: dict) -> dict:
    return {
        k: v
        for k, v in flat.items()
        if k.split('.')[0].split('[')[0] not in HELPERS
        and not (k in DEFAULTED and v == DEFAULTED[k])
    }


def _renamed(flat: dict) -> dict:
    out = {}
    for key, value in flat.items():
        for old, new in RENAMES.items():
            if key == old or key.startswith(old + '.'):
                key = new + key[len(old) :]
                break
        out[key] = value
    return out


FIXTURES = json.loads(FIXTURE.read_text())


def test_the_same_configs_are_shipped():
    assert sorted(FIXTURES) == leaf_configs(str(REPO_ROOT))


@pytest.mark.parametrize('path', sorted(FIXTURES))
def test_effective_settings_are_unchanged(path):
    before = _settings({**_renamed(FIXTURES[path]), **CHANGED_EVERYWHERE, **CHANGED.get(path, {})})
    # JSON turned tuples into lists and unknown objects into repr strings
    after = json.loads(
        json.dumps(
            _settings(flatten(_resolved(Config.fromfile(str(REPO_ROOT / path))))), default=repr
        )
    )
    changed = {
        k: (before.get(k, '<absent>'), after.get(k, '<absent>'))
        for k in set(before) | set(after)
        if before.get(k) != after.get(k)
    }
    assert not changed, changed


def test_the_view_catches_a_changed_eps_and_schedule():
    path = 'configs/demo/nf-resnet18-w16_1xb64_digits_pgdat-eps48.py'
    cfg = Config.fromfile(str(REPO_ROOT / path))
    cfg.data_preprocessor.eps = 47
    cfg.param_scheduler[1].T_max = 13
    after = _settings(flatten(_resolved(cfg)))
    before = _settings({**_renamed(FIXTURES[path]), **CHANGED_EVERYWHERE})
    diff = {k for k in before if before[k] != after.get(k)}
    assert diff == {
        'data_preprocessor.eps',
        'param_scheduler[CosineAnnealingLR].T_max',
        'custom_hooks[AdversarialTrainingHook].val_attack.eps',
        'test_attacks[PGD-20].eps',
        'test_attacks[AutoAttack].eps',
    }
