"""mmpretrain's own tools/train.py and tools/test.py on the plug-in's configs (README)."""

import argparse
import copy
import importlib.util

import pytest
from mmengine.config import Config
from mmengine.registry import RUNNERS

import nofrost_mm  # noqa: F401
from nofrost_mm.datasets import SklearnDigits
from nofrost_mm.utils import follow_training_eps
from tests.conftest import REPO_ROOT

DEMO = 'configs/demo/resnet18-w16_1xb64_digits.py'
DEMO_PGDAT = 'configs/demo/nf-resnet18-w16_1xb64_digits_pgdat.py'
SHIPPED = sorted(
    str(p.relative_to(REPO_ROOT))
    for p in (REPO_ROOT / 'configs').rglob('*.py')
    if '_base_' not in p.parts
)


def _mmpretrain_tool(name):
    """``mmpretrain/.mim/tools/{name}.py`` of the installed mmpretrain, as a module."""
    import mmpretrain

    path = importlib.util.find_spec('mmpretrain').submodule_search_locations[0]
    spec = importlib.util.spec_from_file_location(
        f'mmpretrain_{name}', f'{path}/.mim/tools/{name}.py'
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert mmpretrain.__version__.startswith('1.2')
    return module


def _train_args(config, tmp_path):
    return argparse.Namespace(
        config=config,
        work_dir=str(tmp_path),
        resume=False,
        amp=False,
        no_validate=False,
        auto_scale_lr=False,
        no_pin_memory=False,
        no_persistent_workers=False,
        cfg_options=None,
        launcher='none',
    )


@pytest.mark.parametrize('config', SHIPPED)
def test_mmpretrain_train_defaults_keep_every_dataloader_valid(config, tmp_path):
    """Its merge_args turns persistent_workers on unless the config says no."""
    tool = _mmpretrain_tool('train')
    cfg = tool.merge_args(Config.fromfile(REPO_ROOT / config), _train_args(config, tmp_path))
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(field)
        if loader is not None:
            assert not (loader.get('persistent_workers') and loader.get('num_workers', 0) == 0), (
                field,
                dict(loader),
            )


def test_mmpretrain_train_builds_the_demo_dataloaders(tmp_path):
    """torch's own check (persistent_workers needs num_workers > 0) passes."""
    tool = _mmpretrain_tool('train')
    cfg = tool.merge_args(Config.fromfile(REPO_ROOT / DEMO), _train_args(DEMO, tmp_path))
    cfg.log_level = 'WARNING'
    runner = RUNNERS.build(cfg)
    for field in ('train_dataloader', 'val_dataloader'):
        loader_cfg = copy.deepcopy(cfg[field])
        loader_cfg.dataset.indices = 8
        loader = runner.build_dataloader(loader_cfg)
        assert loader.num_workers == 0 and not loader.persistent_workers


def test_mmpretrain_test_runs_the_configs_test_attacks(tmp_path, monkeypatch):
    """Its test.py builds the runner from the config: test_attacks is the loop."""

    def refuse(self):
        raise AssertionError('data was read')

    monkeypatch.setattr(SklearnDigits, 'load_data_list', refuse)
    tool = _mmpretrain_tool('test')
    args = argparse.Namespace(
        config=DEMO_PGDAT,
        checkpoint=str(tmp_path / 'ckpt.pth'),
        work_dir=str(tmp_path),
        launcher='none',
        amp=False,
        show=False,
        show_dir=None,
        tta=False,
        no_pin_memory=False,
        cfg_options=None,
    )
    cfg = tool.merge_args(Config.fromfile(REPO_ROOT / DEMO_PGDAT), args)
    attacks = copy.deepcopy(cfg.test_attacks)
    cfg.log_level = 'WARNING'
    runner = RUNNERS.build(cfg)
    # the attacks follow the training eps
    assert runner._test_loop == dict(
        type='RobustTestLoop', attacks=follow_training_eps(attacks, 32)
    )
    assert runner._test_evaluator == dict(type='RobustAccuracy')
    assert [a['name'] for a in attacks] == ['PGD-20', 'AutoAttack']
