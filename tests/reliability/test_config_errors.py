"""Bad values of the plug-in's config keys are rejected before any data is read."""

import pytest
from mmengine.config import Config

import nofrost_mm  # noqa: F401
from nofrost_mm.datasets import SklearnDigits
from nofrost_mm.engine.runner.nofrost_runner import NoFrostRunner
from tests.conftest import REPO_ROOT
from tests.reliability.helpers import DEMO

PGDAT = REPO_ROOT / 'configs/demo/nf-resnet18-w16_1xb64_digits_pgdat.py'
GUARD = 'custom_hooks'

CASES = {
    # NoFrostRunner: env_cfg.dist_cfg
    'dist timeout type': (
        DEMO,
        {'env_cfg.dist_cfg.timeout': '30'},
        TypeError,
        ['env_cfg.dist_cfg.timeout (seconds) must be a number', "'30'"],
    ),
    'dist timeout range': (
        DEMO,
        {'env_cfg.dist_cfg.timeout': 0},
        ValueError,
        ['env_cfg.dist_cfg.timeout (seconds)=0 is out of range', '(0, inf)'],
    ),
    'dist unknown key': (
        DEMO,
        {'env_cfg.dist_cfg.timout': 30},
        KeyError,
        ["env_cfg.dist_cfg: unknown key 'timout'", "did you mean 'timeout'?"],
    ),
    # SklearnDigits
    'digits split': (
        DEMO,
        {'train_dataloader.dataset.split': 'tran'},
        ValueError,
        ["split='tran' is not one of ('train', 'val', 'trainval', 'test')"],
    ),
    'digits img_size': (
        DEMO,
        {'val_dataloader.dataset.img_size': 4},
        ValueError,
        ['img_size must be an int >= 8, got 4'],
    ),
    'digits unknown key': (
        DEMO,
        {'train_dataloader.dataset.img_szie': 32},
        KeyError,
        [
            "train_dataloader.dataset (type='SklearnDigits'): unknown "
            "key 'img_szie' (did you mean 'img_size'?)"
        ],
    ),
    # DivergenceGuardHook
    'guard action': (
        DEMO,
        {GUARD: [dict(type='DivergenceGuardHook', action='halt')]},
        ValueError,
        ["DivergenceGuardHook.action='halt' is not allowed", "allowed: 'stop', 'skip'"],
    ),
    'guard skips range': (
        DEMO,
        {GUARD: [dict(type='DivergenceGuardHook', max_consecutive_skips=0)]},
        ValueError,
        ['max_consecutive_skips=0 is out of range', '[1, inf)'],
    ),
    'guard skips type': (
        DEMO,
        {GUARD: [dict(type='DivergenceGuardHook', max_consecutive_skips=True)]},
        TypeError,
        ['max_consecutive_skips must be an int, got True'],
    ),
    'guard unknown key': (
        DEMO,
        {GUARD: [dict(type='DivergenceGuardHook', actoin='skip')]},
        KeyError,
        [
            "custom_hooks[0] (type='DivergenceGuardHook'): unknown "
            "key 'actoin' (did you mean 'action'?)"
        ],
    ),
    # CheckedLoadImageFromFile
    'image loader choice': (
        DEMO,
        {
            'train_dataloader.dataset.pipeline': [
                dict(type='CheckedLoadImageFromFile', on_bad_image='ignore'),
                dict(type='PackInputs'),
            ]
        },
        ValueError,
        [
            "CheckedLoadImageFromFile.on_bad_image='ignore' is not allowed",
            "allowed: 'raise', 'skip'",
        ],
    ),
    'image loader unknown key': (
        DEMO,
        {
            'train_dataloader.dataset.pipeline': [
                dict(type='CheckedLoadImageFromFile', on_bad_imgae='skip'),
                dict(type='PackInputs'),
            ]
        },
        KeyError,
        ["unknown key 'on_bad_imgae' (did you mean 'on_bad_image'?)"],
    ),
    # issue 5's adversarial-training keys (validated by their own components)
    'AT eps warm-up': (
        PGDAT,
        {'custom_hooks.0.eps_warmup': -1},
        ValueError,
        ['AdversarialTrainingHook.eps_warmup=-1 is out of range; allowed: [0, inf)'],
    ),
    'AT loss weight': (
        PGDAT,
        {'model.adv_loss_weight': 2.0},
        ValueError,
        ['model.adv_loss_weight must be a number in [0, 1]'],
    ),
    'AT loss weight, old key': (
        PGDAT,
        {'data_preprocessor.adv_loss_weight': 0.5},
        ValueError,
        ['data_preprocessor.adv_loss_weight moved to model.adv_loss_weight'],
    ),
    'AT attack eps, old key': (
        PGDAT,
        {'data_preprocessor.attack.eps': 8},
        ValueError,
        ['data_preprocessor.attack.eps moved to data_preprocessor.eps'],
    ),
    'AT attack eps': (
        PGDAT,
        {'data_preprocessor.eps': -8},
        ValueError,
        [
            'data_preprocessor.attack: attack PGDAttack: eps=-8 must be a '
            'number >= 0 in pixel units of 255'
        ],
    ),
    'AT attack eps [0, 1] scale': (
        PGDAT,
        {'data_preprocessor.eps': 0.03},
        ValueError,
        [
            'data_preprocessor.attack: attack PGDAttack: eps=0.03 looks like a [0, 1]-scale '
            'value; sizes are in pixel units of 255 (use eps=7.65 for 0.03 in [0, 1])'
        ],
    ),
    'AT val attack eps [0, 1] scale': (
        PGDAT,
        {'custom_hooks.0.val_attack.eps': 0.03},
        ValueError,
        ['attack PGDAttack: eps=0.03 looks like a [0, 1]-scale value'],
    ),
    'AT unknown hook key': (
        PGDAT,
        {'custom_hooks.0.eps_warmpu': 3},
        KeyError,
        ["unknown key 'eps_warmpu' (did you mean 'eps_warmup'?)"],
    ),
    'AT unknown model key': (
        PGDAT,
        {'model.adv_forwrd': 'concat'},
        KeyError,
        ["unknown key 'adv_forwrd' (did you mean 'adv_forward'?)"],
    ),
}


@pytest.fixture
def no_data_reads(monkeypatch):
    def refuse(self):
        raise AssertionError('data was read')

    monkeypatch.setattr(SklearnDigits, 'load_data_list', refuse)


def _build_and_train(config, options, tmp_path):
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    cfg.work_dir = str(tmp_path)
    cfg.log_level = 'WARNING'
    NoFrostRunner.from_cfg(cfg).train()


@pytest.mark.parametrize('case', list(CASES))
def test_bad_key_is_rejected_before_data_is_read(case, tmp_path, no_data_reads):
    config, options, error, fragments = CASES[case]
    with pytest.raises(error) as info:
        _build_and_train(config, options, tmp_path)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message


def test_a_good_config_does_reach_the_data(tmp_path, no_data_reads):
    """The fixture above is a real tripwire: a valid config hits it."""
    with pytest.raises(AssertionError, match='data was read'):
        _build_and_train(DEMO, {}, tmp_path)


@pytest.mark.parametrize(
    'config',
    sorted(
        str(p.relative_to(REPO_ROOT))
        for p in (REPO_ROOT / 'configs').rglob('*.py')
        if '_base_' not in p.parts
    ),
)
def test_shipped_configs_pass_the_key_check(config):
    """No false alarm: every config in configs/ uses only valid plug-in keys."""
    from nofrost_mm.engine.runner.nofrost_runner import _plugin_registries
    from nofrost_mm.utils.config_checks import check_plugin_component_keys

    check_plugin_component_keys(dict(Config.fromfile(REPO_ROOT / config)), _plugin_registries())
