"""configs/nofrost: each config builds its model and hooks with the official recipe."""

import argparse
import copy

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import HOOKS, MODELS

import nofrost_mm  # noqa: F401  (registers the plug-in)
from tests.conftest import REPO_ROOT

AT_CONFIGS = [
    'nf-resnet50_8xb32_in1k_pgdat.py',
    'resnet50_8xb32_in1k_pgdat.py',
    'resnet50-nfconv_8xb32_in1k_pgdat.py',
    'nf-resnet18_1xb128_cifar10_pgdat.py',
    'resnet18_1xb128_cifar10_pgdat.py',
]


def _model(cfg):
    init_default_scope('mmpretrain')
    model = copy.deepcopy(cfg.model)
    model.setdefault('data_preprocessor', copy.deepcopy(cfg.data_preprocessor))
    return MODELS.build(model)


@pytest.mark.parametrize('name', AT_CONFIGS)
def test_at_configs_build_with_the_official_attack(name):
    cfg = Config.fromfile(REPO_ROOT / 'configs/nofrost' / name)
    model = _model(cfg)
    pre = model.data_preprocessor
    assert type(model).__name__ == 'AdvImageClassifier'
    assert type(pre).__name__ == 'PGDDataPreprocessor'
    assert (pre.attack.eps, pre.attack.steps, pre.attack.norm) == (8, 10, 'Linf')
    assert pre.attack.get_step_size() == pytest.approx(1.0)  # min(1.25*8, 8+4)/10
    assert model.adv_loss_weight == 0.5 and model.adv_forward == 'separate'
    hook = HOOKS.build(cfg.custom_hooks[0])
    assert hook.adv_val_interval == 10 and hook.val_attack.steps == 5
    assert cfg.default_hooks.checkpoint.save_best == ['accuracy/top1', 'robust_accuracy/top1']
    sgd = cfg.optim_wrapper.optimizer
    assert sgd.nesterov and sgd.momentum == 0.9
    if 'in1k' in name:
        assert sgd.lr == 0.1 and sgd.weight_decay == 5e-5
        assert cfg.train_cfg.max_epochs == 90 and cfg.auto_scale_lr.base_batch_size == 256
        assert cfg.train_dataloader.batch_size == 32
        assert model.head.dropout_rate == 0.25
        assert cfg.model.head.loss == dict(type='LabelSmoothLoss', label_smooth_val=0.1)
        assert pre.to_rgb and pre.num_classes == 1000


def test_bn_and_nf_imagenet_configs_differ_only_in_the_backbone():
    nf = Config.fromfile(REPO_ROOT / 'configs/nofrost/nf-resnet50_8xb32_in1k_pgdat.py')
    bn = Config.fromfile(REPO_ROOT / 'configs/nofrost/resnet50_8xb32_in1k_pgdat.py')
    assert nf.model.backbone.type == 'NFResNet' and bn.model.backbone.type == 'ResNet'
    assert bn.model.backbone.drop_path_rate == nf.model.backbone.drop_path_rate == 0.1
    for key in ('head', 'neck', 'type'):
        assert nf.model[key] == bn.model[key]
    for key in (
        'data_preprocessor',
        'optim_wrapper',
        'param_scheduler',
        'train_cfg',
        'custom_hooks',
        'train_pipeline',
        'test_pipeline',
    ):
        assert nf[key] == bn[key], key


def test_standard_nf_config_has_no_attack():
    cfg = Config.fromfile(REPO_ROOT / 'configs/nofrost/nf-resnet50_8xb32_in1k.py')
    model = _model(cfg)
    assert type(model.data_preprocessor).__name__ == 'ClsDataPreprocessor'
    assert 'custom_hooks' not in cfg


def _load_test_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location('test_tool', REPO_ROOT / 'tools/test.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DEMO_AT_CONFIGS = [
    'configs/demo/' + n
    for n in (
        'resnet18-w16_1xb64_digits_pgdat.py',
        'nf-resnet18-w16_1xb64_digits_pgdat.py',
        'resnet18-w16_1xb64_digits_pureat.py',
        'nf-resnet18-w16_1xb64_digits_trades.py',
    )
]


@pytest.mark.parametrize('path', ['configs/nofrost/' + n for n in AT_CONFIGS] + DEMO_AT_CONFIGS)
def test_at_configs_test_autoattack_by_default(path):
    """tools/test.py on an AT config reports PGD-20 and AutoAttack at the training eps."""
    tool = _load_test_tool()
    cfg = Config.fromfile(REPO_ROOT / path)
    eps = cfg.data_preprocessor.eps
    args = argparse.Namespace(
        work_dir=None,
        checkpoint=__file__,
        amp=False,
        no_pin_memory=False,
        launcher='none',
        config=path,
        cfg_options=None,
        attacks=None,
        num_samples=None,
        resume=False,
        cascade=False,
    )
    merged = tool.merge_args(copy.deepcopy(cfg), args)
    assert merged.test_cfg.type == 'RobustTestLoop'
    assert merged.test_evaluator == dict(type='RobustAccuracy')
    assert [(a['name'], a['type'], a['eps']) for a in merged.test_cfg.attacks] == [
        ('PGD-20', 'PGDAttack', eps),
        ('AutoAttack', 'AutoAttack', eps),
    ]
    assert merged.test_cfg.attacks[1]['version'] == 'standard'
    assert merged.test_cfg.attacks[0]['early_exit'] is True
    assert merged.test_cfg.state_dir == 'auto'  # per-batch results kept

    args.attacks = ['none']  # the plain clean evaluation of the config
    plain = tool.merge_args(copy.deepcopy(cfg), args)
    assert 'test_attacks' not in plain and plain.get('test_cfg', {}).get('type') != 'RobustTestLoop'
    assert plain.test_evaluator == cfg.test_evaluator

    # a config that sets the loop itself loses its attacks too
    looped = copy.deepcopy(cfg)
    looped.test_cfg = dict(type='RobustTestLoop', attacks=[dict(type='FGSM', eps=eps)])
    assert tool.merge_args(looped, args).test_cfg.attacks == []

    args.attacks = ['none', 'PGD']
    with pytest.raises(ValueError, match='"none" cannot be combined'):
        tool.merge_args(copy.deepcopy(cfg), args)


def test_demo_at_configs_validate_robustness_at_the_official_cadence():
    """Every demo AT config attacks the val set at epochs 10 and 15 of 15 only.

    Official: every 10 epochs and in the last 10%; with val_interval 5 the val
    loop runs at 5, 10, 15 and epoch 5 stays clean-only.
    """
    from types import SimpleNamespace

    configs = sorted((REPO_ROOT / 'configs/demo').glob('*_digits_*.py'))
    checked = 0
    for path in configs:
        cfg = Config.fromfile(path)
        hooks = [h for h in cfg.get('custom_hooks', []) if h['type'] == 'AdversarialTrainingHook']
        if not hooks:
            continue
        hook = HOOKS.build(hooks[0])
        hook.before_train(None)
        epochs = cfg.train_cfg.max_epochs
        val_epochs = range(cfg.train_cfg.val_interval, epochs + 1, cfg.train_cfg.val_interval)
        robust = [
            e
            for e in val_epochs
            if hook._robust_val_due(SimpleNamespace(epoch=e, max_epochs=epochs))
        ]
        assert robust == [10, 15], (path.name, robust)
        checked += 1
    assert checked >= 16  # the PGD-5, eps 48/64, pure, TRADES and single-step configs
