"""tools/demo.py --study [recipes|fast]: which methods each study trains."""
import importlib.util
import os.path as osp
import sys

import pytest

from tests.conftest import REPO_ROOT


@pytest.fixture(scope='module')
def demo():
    spec = importlib.util.spec_from_file_location('demo_tool', REPO_ROOT / 'tools/demo.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('argv,methods', [
    (['--study'], 'recipes'), (['--study', 'recipes'], 'recipes'),
    (['--study', 'fast', '--seeds', '0', '1'], 'fast')])
def test_study_choices(demo, monkeypatch, argv, methods):
    monkeypatch.setattr(sys, 'argv', ['demo.py'] + argv)
    args = demo.parse_args()
    assert args.methods == demo.STUDIES[methods]
    if methods == 'fast':
        assert args.methods == ['BN-AT', 'NoFrost (NF-AT)', 'BN-AT N-FGSM',
                                'NF-AT N-FGSM', 'BN-AT FGSM-RS', 'NF-AT FGSM-RS']
        assert args.seeds == [0, 1]
    configs = dict(demo.METHODS + demo.RECIPE_METHODS + demo.FAST_METHODS)
    assert all(osp.isfile(REPO_ROOT / configs[m]) for m in args.methods)


def test_unknown_study_fails(demo, monkeypatch, capsys):
    monkeypatch.setattr(sys, 'argv', ['demo.py', '--study', 'quick'])
    with pytest.raises(SystemExit):
        demo.parse_args()
    assert "invalid choice: 'quick'" in capsys.readouterr().err
