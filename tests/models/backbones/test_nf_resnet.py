import pytest
import timm
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

from nofrost_mm.models.backbones import NFResNet, NFResNet_CIFAR
from nofrost_mm.models.backbones.nf_resnet import NFBasicBlock, NFBottleneck, NormFreeBlock
from nofrost_mm.models.layers import ScaledWSConv2d
from tests.conftest import REPO_ROOT
from tools.model_converters.timm_nfresnet_to_mmpretrain import convert_timm_nfresnet


def _build_classifier(depth, **backbone):
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(REPO_ROOT / f'configs/_base_/models/nf-resnet{depth}.py')
    cfg.model.backbone.update(drop_path_rate=0.0, **backbone)
    cfg.model.head.dropout_rate = 0.0
    return MODELS.build(cfg.model)


@pytest.mark.parametrize('depth', [26, 50, 101])
def test_parity_with_timm(depth):
    torch.manual_seed(depth)
    ref = timm.create_model(f'nf_resnet{depth}', pretrained=False)
    with torch.no_grad():  # non-trivial gains/biases: zero gains hide bugs
        for name, p in ref.named_parameters():
            if name.endswith(('gain', 'bias')):
                p.normal_(0.5, 0.2)
    model = _build_classifier(depth)
    model.load_state_dict(convert_timm_nfresnet(ref.state_dict()))
    x = torch.randn(2, 3, 64, 64)
    for mode in ('eval', 'train'):  # no BN: train differs only by drops
        ref.train(mode == 'train')
        model.train(mode == 'train')
        with torch.no_grad():
            diff = (ref(x) - model(x, mode='tensor')).abs().max().item()
        assert diff <= 1e-4, (depth, mode, diff)


@pytest.mark.parametrize(
    'depth,block,channels',
    [
        (18, NFBasicBlock, (8, 16, 32, 64)),
        (34, NFBasicBlock, (8, 16, 32, 64)),
        (26, NFBottleneck, (32, 64, 128, 256)),
        (152, NFBottleneck, (32, 64, 128, 256)),
    ],
)
def test_depths_and_out_indices(depth, block, channels):
    model = NFResNet(depth, stem_channels=8, base_channels=8, out_indices=(0, 1, 2, 3))
    assert isinstance(model.layer1[0], block)
    assert len(list(model.modules())) and model.feat_dim == channels[-1]
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == list(channels)
    assert [o.shape[-1] for o in outs] == [16, 8, 4, 2]
    assert all((o >= 0).all() for o in outs)  # final activation applied
    # no normalizers anywhere; every conv is scaled-WS
    assert not any('Norm' in type(m).__name__ for m in model.modules())
    assert all(
        isinstance(m, ScaledWSConv2d) for m in model.modules() if isinstance(m, torch.nn.Conv2d)
    )


def test_beta_tracks_expected_variance_and_skipinit():
    model = NFResNet(50, alpha=0.2)
    betas = [b.beta for b in model.layer1] + [b.beta for b in model.layer2]
    # timm: 1 / sqrt(expected var), reset to 1 after each transition block
    expected = [1.0, 1.04, 1.08, 1.12, 1.04, 1.08, 1.12]
    assert betas == pytest.approx([v**-0.5 for v in expected])
    for m in model.modules():
        if isinstance(m, NormFreeBlock):
            assert torch.count_nonzero(m.last_conv.gain) == 0
    model = NFResNet(18, zero_init_last=False)
    assert torch.all(model.layer1[0].last_conv.gain == 1)


def test_cifar_stem_and_avg_down():
    model = NFResNet_CIFAR(18, stem_channels=8, base_channels=8)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert model(torch.randn(2, 3, 32, 32))[0].shape == (2, 64, 4, 4)
    strided = NFResNet_CIFAR(18, stem_channels=8, base_channels=8, avg_down=False)
    down = strided.layer2[0].downsample
    assert list(dict(down.named_children())) == ['conv']
    assert down.conv.stride == (2, 2)


def test_with_cp_and_drop_path():
    torch.manual_seed(0)
    kwargs = dict(depth=18, stem_channels=8, base_channels=8)
    model = NFResNet(zero_init_last=False, **kwargs)
    cp_model = NFResNet(with_cp=True, zero_init_last=False, **kwargs)
    cp_model.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    out, cp_out = model(x)[0], cp_model(x)[0]
    assert torch.allclose(out, cp_out)
    g1 = torch.autograd.grad(out.sum(), model.conv1.weight)[0]
    g2 = torch.autograd.grad(cp_out.sum(), cp_model.conv1.weight)[0]
    assert torch.allclose(g1, g2, atol=1e-5)
    drop = NFResNet(drop_path_rate=0.5, **kwargs)
    rates = [
        getattr(b.drop_path, 'drop_prob', 0.0)
        for b in drop.modules()
        if isinstance(b, NormFreeBlock)
    ]
    assert rates[0] == 0 and rates[-1] == pytest.approx(0.5)
    assert rates == sorted(rates)


def test_frozen_stages():
    model = NFResNet(18, stem_channels=8, base_channels=8, frozen_stages=1)
    model.train()
    assert not model.conv1.weight.requires_grad
    assert not any(p.requires_grad for p in model.layer1.parameters())
    assert all(p.requires_grad for p in model.layer2.parameters())
    assert not model.layer1.training and model.layer2.training


def test_bad_arguments_are_clear():
    with pytest.raises(KeyError, match=r'depth=20.*18, 26, 34'):
        NFResNet(20)
    with pytest.raises(ValueError, match='out_indices'):
        NFResNet(18, out_indices=(4,))
    with pytest.raises(ValueError, match='drop_path_rate'):
        NFResNet(18, drop_path_rate=1.5)


def test_config_head_dropout():
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(REPO_ROOT / 'configs/_base_/models/nf-resnet50.py')
    assert cfg.model.head.dropout_rate == 0.25  # official NoFrost recipe
    cfg = Config.fromfile(REPO_ROOT / 'configs/_base_/models/nf-resnet18_cifar.py')
    cfg.model.backbone.update(stem_channels=8, base_channels=8)
    cfg.model.head.update(in_channels=64, dropout_rate=0.5)
    model = MODELS.build(cfg.model)
    x = torch.randn(4, 3, 32, 32)
    model.eval()
    assert torch.equal(model(x, mode='tensor'), model(x, mode='tensor'))
    feats = model.extract_feat(x)
    model.train()
    dropped = model.head.pre_logits(feats)
    assert (dropped == 0).float().mean() > 0.2  # about half are dropped
    with pytest.raises(ValueError, match='dropout_rate'):
        cfg.model.head.dropout_rate = 1.0
        MODELS.build(cfg.model)
