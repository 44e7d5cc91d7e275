"""The config text is formatted once per content, and stays mmengine's text."""

import copy
import pickle

import torch
from mmengine.config import Config

import nofrost_mm  # noqa: F401
from nofrost_mm.engine.runner.nofrost_runner import NoFrostRunner
from nofrost_mm.engine.runner.text_cached_config import TextCachedConfig
from tests.reliability.helpers import DEMO


def test_text_is_mmengines_made_once_and_remade_after_a_change(monkeypatch):
    plain = Config.fromfile(DEMO)
    cached = TextCachedConfig.of(copy.deepcopy(plain))
    calls = []
    from mmengine.config.config import FormatCode

    monkeypatch.setattr(
        'mmengine.config.config.FormatCode', lambda *a, **k: calls.append(1) or FormatCode(*a, **k)
    )
    text = plain.pretty_text
    calls.clear()
    for _ in range(3):
        assert cached.pretty_text == text
    assert len(calls) == 1  # formatted once
    cached.train_cfg.max_epochs = 7
    plain.train_cfg.max_epochs = 7
    text = plain.pretty_text
    assert 'max_epochs=7' in text and cached.pretty_text == text
    assert len(calls) == 3  # remade for the new content (and plain's own)
    # copies and pickles stay cached configs with the same content
    for other in (copy.deepcopy(cached), pickle.loads(pickle.dumps(cached))):
        assert isinstance(other, TextCachedConfig)
        assert other.pretty_text == text


def test_runner_checkpoints_carry_the_config_text(tmp_path):
    cfg = Config.fromfile(DEMO)
    cfg.work_dir = str(tmp_path)
    cfg.train_dataloader.dataset.indices = 64
    cfg.val_dataloader.dataset.indices = 32
    cfg.log_level = 'WARNING'
    runner = NoFrostRunner.from_cfg(cfg)
    assert isinstance(runner.cfg, TextCachedConfig)
    runner.save_checkpoint(str(tmp_path), 'a.pth', save_optimizer=False, save_param_scheduler=False)
    meta = torch.load(tmp_path / 'a.pth', weights_only=True)['meta']
    assert meta['cfg'] == Config(runner.cfg._cfg_dict.to_dict()).pretty_text
