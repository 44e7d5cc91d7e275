"""tools/model_converters/timm_nfresnet_to_mmpretrain.py, run as a user would."""

import pytest
import timm
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmpretrain.registry import MODELS

import nofrost_mm  # noqa: F401  (registers NFResNet)
from tests.conftest import REPO_ROOT, run_tool
from tests.tools.user_path_runs import run_main
from tools.model_converters.timm_nfresnet_to_mmpretrain import extract_state_dict

TOOL = 'tools/model_converters/timm_nfresnet_to_mmpretrain.py'


@pytest.fixture(scope='module')
def timm_nf_resnet50():
    torch.manual_seed(0)
    return timm.create_model('nf_resnet50', pretrained=False).eval()


@pytest.mark.parametrize('wrap', ['bare', 'model', 'state_dict', 'ddp'])
def test_checkpoint_layouts(timm_nf_resnet50, wrap):
    state_dict = timm_nf_resnet50.state_dict()
    checkpoint = state_dict
    if wrap == 'ddp':
        checkpoint = {f'module.{k}': v for k, v in state_dict.items()}
    elif wrap != 'bare':
        checkpoint = {wrap: state_dict, 'epoch': 3}
    extracted = extract_state_dict(checkpoint)
    assert list(extracted) == list(state_dict)


def test_round_trip_into_config(tmp_path, timm_nf_resnet50):
    # the official NoFrost layout: DDP-prefixed weights under 'model'
    checkpoint = {
        'model': {f'module.{k}': v for k, v in timm_nf_resnet50.state_dict().items()},
        'epoch': 89,
    }
    src, dst = tmp_path / 'timm.pth', tmp_path / 'mm.pth'
    torch.save(checkpoint, src)
    proc = run_tool([TOOL, src, dst])
    assert 'converted' in proc.stdout

    init_default_scope('mmpretrain')
    cfg = Config.fromfile(REPO_ROOT / 'configs/_base_/models/nf-resnet50.py')
    model = MODELS.build(cfg.model).eval()
    result = model.load_state_dict(torch.load(dst, weights_only=True)['state_dict'], strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    load_checkpoint(model, str(dst), strict=True)  # mmengine's loader too
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        diff = (timm_nf_resnet50(x) - model(x, mode='tensor')).abs().max()
    assert diff <= 1e-4


def test_unknown_keys_are_listed(tmp_path, monkeypatch):
    torch.manual_seed(0)
    se = timm.create_model('nf_seresnet26', pretrained=False)
    src = tmp_path / 'se.pth'
    torch.save(se.state_dict(), src)
    # the tool's main in this process (the round trip above is the subprocess)
    with pytest.raises(KeyError) as info:
        run_main(monkeypatch, TOOL, [src, tmp_path / 'out.pth'])
    assert 'no NFResNet counterpart' in str(info.value)
    assert 'stages.0.0.attn_last.fc1.weight' in str(info.value)
    assert not (tmp_path / 'out.pth').exists()


def test_not_a_checkpoint_is_clear():
    with pytest.raises(ValueError, match="neither a state dict"):
        extract_state_dict({'meta': {'epoch': 1}})
