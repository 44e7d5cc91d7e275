"""nofrost_mm/utils/cli.py: the tools' shared command-line rules."""

import argparse

import pytest
from mmengine.config import Config

from nofrost_mm.utils import cli


def _pairs_parser():
    parser = argparse.ArgumentParser(prog='tool')
    cli.add_model_pairs_args(parser)
    return parser


def test_one_naming_rule_for_model_pairs():
    pairs = [('a/at.py', 'w/epoch_1.pth'), ('b/nf.py', 'w/epoch_2.pth')]
    assert cli.pair_names(pairs) == ['at', 'nf']
    # one config twice: its checkpoints tell the rows apart
    assert cli.pair_names([('at.py', 'e/epoch_1.pth'), ('at.py', 'e/epoch_9.pth')]) == [
        'at (epoch_1)',
        'at (epoch_9)',
    ]
    # still the same (same file names in two folders): numbered
    assert cli.pair_names([('at.py', 'x/last.pth'), ('at.py', 'y/last.pth')]) == [
        '1: at (last)',
        '2: at (last)',
    ]
    # labels are kept as given, only repeats numbered
    assert cli.pair_names(pairs, ['A', 'A']) == ['1: A', '2: A']
    assert cli.pair_names(pairs, ['BN-AT', 'NoFrost']) == ['BN-AT', 'NoFrost']


def test_model_pairs_are_checked_before_anything_is_read(tmp_path, capsys):
    config, ckpt = tmp_path / 'at.py', tmp_path / 'epoch_1.pth'
    config.write_text('x = 1\n')
    ckpt.write_bytes(b'')
    parser = _pairs_parser()
    args = parser.parse_args([str(config), str(ckpt)])
    assert cli.model_pairs(parser, args) == [cli.ModelPair('at', str(config), str(ckpt))]
    with pytest.raises(SystemExit) as error:
        cli.model_pairs(parser, parser.parse_args([str(config), str(ckpt), str(config)]))
    assert error.value.code == 2
    assert 'models come in CONFIG CHECKPOINT pairs; got 3 paths' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.model_pairs(parser, parser.parse_args([str(config), str(ckpt), '--labels', 'a', 'b']))
    assert '--labels: 2 names for 1 models' in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match=r'nope\.pth: no such file \(paired with config'):
        cli.model_pairs(parser, parser.parse_args([str(config), str(tmp_path / 'nope.pth')]))


def test_attacks_none_is_read_once():
    assert cli.attack_specs(None) is None
    assert cli.attack_specs(['none']) == [] and cli.attack_specs(['None']) == []
    assert cli.attack_specs(['PGD', "{'type': 'FGSM'}"]) == ['PGD', "{'type': 'FGSM'}"]
    with pytest.raises(ValueError, match='"none" cannot be combined with attacks'):
        cli.attack_specs(['none', 'PGD'])


def test_dataloader_defaults_of_train_and_test():
    cfg = Config(
        dict(
            train_dataloader=dict(batch_size=2, num_workers=0),
            val_dataloader=dict(batch_size=2, num_workers=2, pin_memory=False),
            test_dataloader=None,
        )
    )
    cli.set_dataloader_defaults(
        cfg, ('train_dataloader', 'val_dataloader', 'test_dataloader'), no_persistent_workers=False
    )
    assert cfg.train_dataloader.pin_memory is True
    assert cfg.train_dataloader.persistent_workers is False  # no worker processes
    assert cfg.val_dataloader.persistent_workers is True
    assert cfg.val_dataloader.pin_memory is False  # the config's own setting wins
    assert cfg.train_dataloader.collate_fn == dict(type='default_collate')
    assert cfg.test_dataloader is None
    test = Config(dict(test_dataloader=dict(batch_size=2, num_workers=2)))
    cli.set_dataloader_defaults(test, ('test_dataloader',), no_pin_memory=True)
    assert test.test_dataloader.pin_memory is False
    assert 'persistent_workers' not in test.test_dataloader  # left to the config


def test_work_dir_rule():
    cfg = Config(dict())
    cli.set_work_dir(cfg, None, 'configs/demo/x_digits.py')
    assert cfg.work_dir == './work_dirs/x_digits'
    cli.set_work_dir(cfg, 'mine', 'configs/demo/x_digits.py')
    assert cfg.work_dir == 'mine'
    own = Config(dict(work_dir='own'))
    cli.set_work_dir(own, None, 'configs/demo/x_digits.py')
    assert own.work_dir == 'own'


def test_comparison_arguments(tmp_path, capsys):
    config, ckpt = tmp_path / 'at.py', tmp_path / 'epoch_1.pth'
    config.write_text('x = 1\n')
    ckpt.write_bytes(b'')
    common = ('Plots', '--eps', 'radius', 10, 'steps')
    _, args = cli.comparison_args(*common, [str(config), str(ckpt), '--out', 'o.png'])
    assert args.eps is None and args.steps == 10 and args.num_samples == 500
    assert args.labelled_models == [cli.ModelPair('at', str(config), str(ckpt))]
    for bad, message in (
        (['--out', 'o.pdf'], '--out must be a .png file'),
        (['--out', 'o.png', '--eps', '0'], '--eps must be > 0'),
        (['--out', 'o.png', '--steps', '0'], '--steps must be >= 1'),
        (['--out', 'o.png', '--batch-size', '0'], '--batch-size must be >= 1'),
    ):
        with pytest.raises(SystemExit):
            cli.comparison_args(*common, [str(config), str(ckpt), *bad])
        assert message in capsys.readouterr().err
