"""tools/demo.py --study [recipes|fast|eps ...]: which methods each study trains."""

import importlib.util
import os.path as osp
import sys

import pytest

from nofrost_mm.utils import follow_training_eps, training_eps
from tests.conftest import REPO_ROOT


@pytest.fixture(scope='module')
def demo():
    spec = importlib.util.spec_from_file_location('demo_tool', REPO_ROOT / 'tools/demo.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    'argv,methods',
    [
        (['--study'], 'recipes'),
        (['--study', 'recipes'], 'recipes'),
        (['--study', 'fast', '--seeds', '0', '1'], 'fast'),
    ],
)
def test_study_choices(demo, monkeypatch, argv, methods):
    monkeypatch.setattr(sys, 'argv', ['demo.py'] + argv)
    args = demo.parse_args()
    assert args.methods == demo.STUDIES[methods]
    if methods == 'fast':
        assert args.methods == [
            'BN-AT',
            'NoFrost (NF-AT)',
            'BN-AT N-FGSM',
            'NF-AT N-FGSM',
            'BN-AT N-FGSM mixed',
            'NF-AT N-FGSM mixed',
            'BN-AT FGSM-RS',
            'NF-AT FGSM-RS',
        ]
        assert args.seeds == [0, 1]
    configs = dict(demo.ALL_METHODS)
    assert all(osp.isfile(REPO_ROOT / configs[m]) for m in args.methods)


def test_eps_study_and_studies_together(demo, monkeypatch):
    monkeypatch.setattr(sys, 'argv', ['demo.py', '--study', 'fast', 'eps'])
    args = demo.parse_args()
    # the rows the two studies share are trained once
    assert args.methods.count('BN-AT') == 1
    assert set(args.methods) == set(demo.STUDIES['fast'] + demo.STUDIES['eps'])
    eps = {m: demo.method_eps(m) for m in demo.STUDIES['eps']}
    assert sorted(set(eps.values())) == [32, 48, 64]
    configs = dict(demo.ALL_METHODS)
    for m, e in eps.items():
        assert osp.isfile(REPO_ROOT / configs[m]), m
        # each BN-AT / NoFrost row trains at the eps it is evaluated at
        if demo.family(m) != 'Standard (BN)':
            from mmengine.config import Config

            cfg = Config.fromfile(str(REPO_ROOT / configs[m]))
            assert cfg.data_preprocessor.eps == e, m
            # validation and test attacks follow the training eps
            assert 'eps' not in cfg.custom_hooks[0].val_attack, m
            assert {a['eps'] for a in follow_training_eps(cfg.test_attacks, training_eps(cfg))} == {
                e
            }, m
        else:  # one standard model per seed, evaluated at every eps
            assert configs[m] == configs['Standard (BN)']


def test_unknown_study_fails(demo, monkeypatch, capsys):
    monkeypatch.setattr(sys, 'argv', ['demo.py', '--study', 'quick'])
    with pytest.raises(SystemExit):
        demo.parse_args()
    assert "invalid choice: 'quick'" in capsys.readouterr().err
