"""Single-step configs (configs/nofrost/*_nfgsm.py, configs/demo/*_{nfgsm,fgsmrs}.py)."""

import copy

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import HOOKS, MODELS

import nofrost_mm  # noqa: F401  (registers the plug-in)
from tests.conftest import REPO_ROOT

NOFROST = [
    ('nf-resnet50_8xb32_in1k_nfgsm.py', 'nf-resnet50_8xb32_in1k_pgdat.py'),
    ('resnet50_8xb32_in1k_nfgsm.py', 'resnet50_8xb32_in1k_pgdat.py'),
    ('nf-resnet18_1xb128_cifar10_nfgsm.py', 'nf-resnet18_1xb128_cifar10_pgdat.py'),
    ('resnet18_1xb128_cifar10_nfgsm.py', 'resnet18_1xb128_cifar10_pgdat.py'),
]
DEMO = [
    (f'{net}_1xb64_digits_{kind}.py', f'{net}_1xb64_digits_pgdat.py', kind)
    for net in ('resnet18-w16', 'nf-resnet18-w16')
    for kind in ('nfgsm', 'fgsmrs')
]


def _model(cfg):
    init_default_scope('mmpretrain')
    model = copy.deepcopy(cfg.model)
    model.setdefault('data_preprocessor', copy.deepcopy(cfg.data_preprocessor))
    return MODELS.build(model)


def _same_but_attack(
    cfg, pgdat, skip=('data_preprocessor', 'custom_hooks', 'filename', 'co_guard')
):
    for key in set(cfg) | set(pgdat):
        if key not in skip:
            assert cfg.get(key) == pgdat.get(key), key
    pre, base = dict(cfg.data_preprocessor), dict(pgdat.data_preprocessor)
    pre.pop('attack'), base.pop('attack')
    assert pre == base


@pytest.mark.parametrize('name,pgdat', NOFROST)
def test_nofrost_nfgsm_configs_are_the_pgdat_recipe_with_nfgsm(name, pgdat):
    cfg = Config.fromfile(REPO_ROOT / 'configs/nofrost' / name)
    base = Config.fromfile(REPO_ROOT / 'configs/nofrost' / pgdat)
    attack = _model(cfg).data_preprocessor.attack
    assert type(attack).__name__ == 'NFGSM'
    assert (attack.eps, attack.noise_ratio, attack.get_step_size()) == (8, 2, 8)
    _same_but_attack(cfg, base)
    hooks = [HOOKS.build(copy.deepcopy(h)) for h in cfg.custom_hooks]
    assert [type(h).__name__ for h in hooks] == [
        'AdversarialTrainingHook',
        'CatastrophicOverfittingHook',
    ]
    assert cfg.custom_hooks[0] == base.custom_hooks[0]


@pytest.mark.parametrize('name,pgdat,kind', DEMO)
def test_demo_single_step_configs(name, pgdat, kind):
    cfg = Config.fromfile(REPO_ROOT / 'configs/demo' / name)
    base = Config.fromfile(REPO_ROOT / 'configs/demo' / pgdat)
    pre = _model(cfg).data_preprocessor
    assert type(pre.attack).__name__ == dict(nfgsm='NFGSM', fgsmrs='FGSMRS')[kind]
    assert pre.attack.eps == 32
    # the papers' pure adversarial loss: no clean pass
    assert cfg.model.adv_loss_weight == 1.0
    assert _model(cfg).adv_loss_weight == 1.0
    base.model.adv_loss_weight = 1.0
    _same_but_attack(cfg, base)


@pytest.mark.parametrize('net', ['resnet18-w16', 'nf-resnet18-w16'])
def test_demo_nfgsm_mixed_configs_are_the_pgdat_recipe_with_nfgsm(net):
    cfg = Config.fromfile(REPO_ROOT / f'configs/demo/{net}_1xb64_digits_nfgsm-mixed.py')
    base = Config.fromfile(REPO_ROOT / f'configs/demo/{net}_1xb64_digits_pgdat.py')
    pre = _model(cfg).data_preprocessor
    assert type(pre.attack).__name__ == 'NFGSM'
    assert _model(cfg).adv_loss_weight == base.model.adv_loss_weight == 0.5
    _same_but_attack(cfg, base)
