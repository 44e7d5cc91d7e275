import dataclasses
import inspect
import math
import re
import textwrap

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmpretrain.registry import DATASETS, MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from nofrost_mm.models.backbones import NormFreeConverter, NormFreeOptions, convert_to_normfree
from nofrost_mm.models.backbones.nf_resnet import NormFreeBlock
from nofrost_mm.models.layers import ScaledWSConv2d
from nofrost_mm.utils.config_checks import accepted_kwargs
from tests.conftest import REPO_ROOT

TINY = dict(stem_channels=8, base_channels=8)
FAMILIES = {
    'ResNet': dict(type='ResNet', depth=18, **TINY),
    'ResNetV1c': dict(type='ResNetV1c', depth=50, **TINY),
    'ResNetV1d': dict(type='ResNetV1d', depth=50, **TINY),
    'ResNeXt': dict(type='ResNeXt', depth=50, groups=2, width_per_group=4, **TINY),
    'SEResNet': dict(type='SEResNet', depth=50, se_ratio=4, **TINY),
    'ResNet_CIFAR': dict(type='ResNet_CIFAR', depth=18, norm_cfg=dict(type='SyncBN'), **TINY),
}


def _digits_batches(n_batches, batch_size=16):
    ds = DATASETS.build(
        dict(type='SklearnDigits', split='train', indices=64, pipeline=[dict(type='PackInputs')])
    )
    return [
        pseudo_collate([ds[i * batch_size + j] for j in range(batch_size)])
        for i in range(n_batches)
    ]


@pytest.mark.parametrize('family', list(FAMILIES))
def test_family_converts_and_trains_without_nan(family):
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    bn_backbone = MODELS.build(FAMILIES[family])
    bn_convs = {
        n: m.weight.detach().clone()
        for n, m in bn_backbone.named_modules()
        if isinstance(m, nn.Conv2d) and '.se_layer.' not in n
    }
    backbone = convert_to_normfree(bn_backbone)
    # every BN gone, every conv scaled-WS with its weights kept
    assert not any(isinstance(m, _BatchNorm) for m in backbone.modules())
    converted = dict(backbone.named_modules())
    for name, weight in bn_convs.items():
        assert isinstance(converted[name], ScaledWSConv2d), name
        assert torch.equal(converted[name].weight, weight), name
    blocks = [m for m in backbone.modules() if isinstance(m, NormFreeBlock)]
    assert blocks and all(b.alpha == 0.2 for b in blocks)
    assert all(torch.count_nonzero(b.last_conv.gain) == 0 for b in blocks)

    feat_dim = bn_backbone.feat_dim
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='NormFreeConverter', backbone=FAMILIES[family]),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=feat_dim),
            data_preprocessor=dict(num_classes=10, mean=[0.0] * 3, std=[255.0] * 3),
        )
    )
    model.init_weights()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
    losses = []
    for data in _digits_batches(3):
        losses.append(model.train_step(data, optim)['loss'].item())
    assert all(math.isfinite(v) for v in losses), losses
    assert all(torch.isfinite(p).all() for p in model.parameters()), family
    # SkipInit gains moved off zero: the branches learn
    gains = [b.last_conv.gain for b in model.modules() if isinstance(b, NormFreeBlock)]
    assert any(torch.count_nonzero(g) for g in gains)


def test_converted_block_is_nf_preactivation():
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    backbone = convert_to_normfree(
        MODELS.build(dict(type='ResNet', depth=50, **TINY)), alpha=0.3, zero_init_last=False
    )
    block = backbone.layer2[1]  # not a transition block
    x = torch.randn(2, 64, 4, 4)
    branch = block.conv3(
        torch.relu(block.conv2(torch.relu(block.conv1(torch.relu(x) * block.beta))))
    )
    assert torch.allclose(block(x), x + 0.3 * branch, atol=1e-6)
    # transition blocks reset the expected variance: beta=1/sqrt(1 + a^2)
    assert backbone.layer3[1].beta == pytest.approx((1 + 0.09) ** -0.5)


def test_outputs_get_final_activation():
    init_default_scope('mmpretrain')
    model = NormFreeConverter(
        dict(type='ResNet', depth=18, out_indices=(1, 3), **TINY), zero_init_last=False
    )
    outs = model(torch.randn(2, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [16, 64]
    assert all((o >= 0).all() for o in outs)


@pytest.mark.parametrize(
    'norm_cfg,name',
    [
        (dict(type='GN', num_groups=2), 'GroupNorm at "gn1"'),
        (dict(type='LN'), 'LayerNorm at "ln1"'),
    ],
)
def test_unsupported_norms_name_the_module(norm_cfg, name):
    init_default_scope('mmpretrain')
    with pytest.raises(TypeError, match=name):
        MODELS.build(
            dict(
                type='NormFreeConverter',
                backbone=dict(type='ResNet', depth=18, norm_cfg=norm_cfg, **TINY),
            )
        )


def test_pretrained_init_cfg_keeps_branches_active(tmp_path):
    init_default_scope('mmpretrain')
    bn = MODELS.build(dict(type='ResNet', depth=18, **TINY))
    ckpt = tmp_path / 'bn.pth'
    torch.save({'state_dict': bn.state_dict()}, ckpt)
    model = NormFreeConverter(
        dict(
            type='ResNet', depth=18, init_cfg=dict(type='Pretrained', checkpoint=str(ckpt)), **TINY
        )
    )
    model.init_weights()
    assert torch.equal(model.backbone.layer1[0].conv1.weight, bn.layer1[0].conv1.weight)
    assert torch.all(model.backbone.layer1[0].last_conv.gain == 1)


def test_bad_backbone_argument():
    with pytest.raises(TypeError, match='backbone must be a config dict'):
        NormFreeConverter(backbone='ResNet')


def test_the_converter_and_the_function_take_the_same_options():
    """Both read NormFreeOptions: the converter's config keys reach the
    conversion, and a misspelt one is refused naming the options."""
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = NormFreeConverter(
        dict(type='ResNet', depth=18, **TINY), alpha=0.3, zero_init_last=False
    )
    torch.manual_seed(0)
    backbone = convert_to_normfree(
        MODELS.build(dict(type='ResNet', depth=18, **TINY)), alpha=0.3, zero_init_last=False
    )
    assert model.options == NormFreeOptions(alpha=0.3, zero_init_last=False)
    assert model.backbone.layer2[1].alpha == 0.3
    assert model.backbone.state_dict().keys() == backbone.state_dict().keys()
    assert all(
        torch.equal(v, backbone.state_dict()[k]) for k, v in model.backbone.state_dict().items()
    )
    # the signatures show the options: the runner's config key check reads them
    options = {f.name for f in dataclasses.fields(NormFreeOptions)}
    assert accepted_kwargs(NormFreeConverter) == options | {'backbone', 'init_cfg'}
    assert set(inspect.signature(convert_to_normfree).parameters) == options | {'module'}
    for build in (
        lambda: NormFreeConverter(dict(type='ResNet', depth=18, **TINY), alfa=0.3),
        lambda: convert_to_normfree(nn.Conv2d(3, 8, 3), alfa=0.3),
    ):
        with pytest.raises(
            TypeError, match=r"unknown options \['alfa'\]; the options are \['alpha'"
        ):
            build()


# stock mmpretrain backbones, built tiny: (config, what NormFreeConverter does
# by default: 'converts', or refuses with 'allow_non_resnet' advice (BN-only
# nets) or 'layernorm' (nets it cannot make normalizer-free at all))
CONVNEXT = dict(type='ConvNeXt', arch=dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 64]))
STOCK = {
    'ResNet-18': (dict(type='ResNet', depth=18, **TINY), 'converts'),
    'ResNetV1d': (dict(type='ResNetV1d', depth=18, **TINY), 'converts'),
    'ResNet_CIFAR': (dict(type='ResNet_CIFAR', depth=18, **TINY), 'converts'),
    'ResNeXt': (dict(type='ResNeXt', depth=50, groups=2, width_per_group=4, **TINY), 'converts'),
    'SEResNet': (dict(type='SEResNet', depth=50, se_ratio=4, **TINY), 'converts'),
    'SEResNeXt': (
        dict(type='SEResNeXt', depth=50, groups=2, width_per_group=4, se_ratio=4, **TINY),
        'converts',
    ),
    'RegNet': (
        dict(
            type='RegNet',
            stem_channels=8,
            arch=dict(w0=8, wa=12.0, wm=2.0, group_w=8, depth=5, bot_mul=1.0),
        ),
        'converts',
    ),
    'ConvNeXt LN': (CONVNEXT, 'layernorm'),
    'ConvNeXt BN': (dict(CONVNEXT, norm_cfg=dict(type='BN')), 'allow_non_resnet'),
    'ViT': (
        dict(
            type='VisionTransformer',
            img_size=32,
            patch_size=8,
            arch=dict(embed_dims=16, num_layers=1, num_heads=2, feedforward_channels=32),
        ),
        'layernorm',
    ),
    'MobileNetV2': (dict(type='MobileNetV2', widen_factor=0.25), 'allow_non_resnet'),
    'VGG': (
        dict(type='VGG', depth=11, norm_cfg=dict(type='BN'), num_classes=-1),
        'allow_non_resnet',
    ),
    # ResNet subclasses whose blocks compute something else
    'Res2Net': (dict(type='Res2Net', depth=50, **TINY), 'allow_non_resnet'),
    'ResNeSt': (dict(type='ResNeSt', depth=50, **TINY), 'allow_non_resnet'),
}


def _forward_backward(backbone):
    """Outputs of a random 32x32 batch; every parameter the loss reaches has
    a finite gradient, and the convs learn."""
    outs = backbone(torch.randn(2, 3, 32, 32))
    sum(o.float().pow(2).mean() for o in outs).backward()
    grads = [p.grad for p in backbone.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(
        torch.count_nonzero(m.weight.grad)
        for m in backbone.modules()
        if isinstance(m, ScaledWSConv2d) and m.weight.grad is not None
    )
    return outs


@pytest.mark.parametrize('name', list(STOCK))
def test_stock_backbone_converts_or_is_refused_clearly(name):
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    cfg, expected = STOCK[name]
    converter = dict(type='NormFreeConverter', backbone=cfg)
    if expected == 'converts':
        model = MODELS.build(converter)
        model.init_weights()
        assert not any(isinstance(m, _BatchNorm) for m in model.modules())
        assert any(isinstance(m, NormFreeBlock) for m in model.modules())
        _forward_backward(model)
        return
    # refused when the model is built, before any training
    with pytest.raises(TypeError) as error:
        MODELS.build(converter)
    message = str(error.value)
    type_name = cfg['type']
    assert f"backbone.type='{type_name}'" in message
    assert 'model.backbone.backbone.type' in message
    for supported in (
        'ResNet,',
        'ResNetV1c',
        'ResNetV1d',
        'ResNet_CIFAR',
        'ResNeXt',
        'SEResNet',
        'SEResNeXt',
        'RegNet',
    ):
        assert supported in message
    assert 'NFResNet' in message and 'configs/_base_/models/nf-resnet' in message
    # no advice that leads into another failure: BN for a ConvNeXt or ViT
    assert "type='BN'" not in message
    if expected == 'allow_non_resnet':
        assert 'allow_non_resnet=True' in message
    else:
        assert 'allow_non_resnet' not in message
        assert 'LayerNorm' in message


@pytest.mark.parametrize(
    'name,shape',
    [
        ('VGG', (2, 512, 1, 1)),
        ('MobileNetV2', (2, 1280, 1, 1)),
        # mmpretrain's own ConvNeXt does not run with BN (its norms get a
        # data_format argument); without them it does
        ('ConvNeXt BN', (2, 64)),
    ],
)
def test_allow_non_resnet_only_removes_the_batchnorms(name, shape):
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    cfg, _ = STOCK[name]
    model = MODELS.build(dict(type='NormFreeConverter', backbone=cfg, allow_non_resnet=True))
    assert not any(isinstance(m, _BatchNorm) for m in model.modules())
    assert not any(isinstance(m, NormFreeBlock) for m in model.modules())
    assert not any(type(m) is nn.Conv2d for m in model.modules())
    outs = _forward_backward(model)
    # the backbone's outputs as it makes them (no final activation added)
    assert [tuple(o.shape) for o in outs] == [shape]
    assert isinstance(model.final_act, nn.Identity)


@pytest.mark.parametrize('name', ['ViT', 'ConvNeXt LN'])
def test_allow_non_resnet_still_refuses_layernorm(name):
    init_default_scope('mmpretrain')
    with pytest.raises(TypeError, match='cannot remove LayerNorm') as error:
        MODELS.build(dict(type='NormFreeConverter', backbone=STOCK[name][0], allow_non_resnet=True))
    assert "type='BN'" not in str(error.value)
    assert 'NFResNet' in str(error.value)


@pytest.mark.parametrize('name', ['ResNet-18', 'ResNetV1d', 'ResNet_CIFAR'])
def test_stem_output_reaches_the_blocks_unactivated(name):
    """As in timm's NF-ResNets: the pre-activation blocks get the stem's
    output as it is, not a ReLU's (the deep stem keeps its inner ReLUs)."""
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    backbone = convert_to_normfree(MODELS.build(STOCK[name][0]))
    first = next(m for m in backbone.modules() if isinstance(m, NormFreeBlock))
    seen = []
    first.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    backbone(torch.randn(2, 3, 32, 32))
    assert (seen[0] < 0).any()
    if name == 'ResNetV1d':
        assert [type(m.activate) for m in backbone.stem] == [nn.ReLU, nn.ReLU, nn.Identity]


def test_converted_blocks_follow_the_nf_variance_rule():
    """Each block of a converted ResNet_CIFAR-18 at init (unit last gains) on
    N(0, 1) inputs: out = shortcut + alpha * branch(act(h) * beta) with a
    variance of Var(h) + alpha^2 beta^2 Var(h), or beta^2 Var(h) (1 + alpha^2)
    at transitions, whose shortcut conv sees the scaled input. Measured
    0.84-1.02 of it over seeds 0-3 (zero padding on the 4x4 maps of the last
    stage loses some); with a ReLU after the stem the first transition gave
    2.4x."""
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    backbone = convert_to_normfree(
        MODELS.build(dict(type='ResNet_CIFAR', depth=18, stem_channels=16, base_channels=16)),
        zero_init_last=False,
    )
    ratios = []

    def var(x):
        return x.transpose(0, 1).flatten(1).var(1, unbiased=False).mean()

    def rule(block, args, out):
        v = var(args[0])
        scaled = block.beta**2 * v
        shortcut = v if block.downsample is None else scaled
        ratios.append(var(out) / (shortcut + block.alpha**2 * scaled))

    for m in backbone.modules():
        if isinstance(m, NormFreeBlock):
            m.register_forward_hook(rule)
    with torch.no_grad():
        backbone(torch.randn(8, 3, 32, 32))
    ratios = torch.stack(ratios)
    assert len(ratios) == 8
    assert ((ratios >= 0.75) & (ratios <= 1.1)).all(), ratios


def _readme_converter_snippet():
    """The README's NormFreeConverter config, as a user copies it."""
    blocks = re.findall(r'```python\n(.*?)```', (REPO_ROOT / 'README.md').read_text(), re.S)
    (snippet,) = [b for b in blocks if 'NormFreeConverter' in b]
    return textwrap.dedent(snippet)


def test_readme_snippet_builds_on_a_stock_mmpretrain_config(tmp_path):
    snippet = _readme_converter_snippet()
    assert "_base_ = ['mmpretrain::" in snippet  # a stock config
    config = tmp_path / 'nf_stock.py'
    config.write_text(snippet)
    cfg = Config.fromfile(config)
    init_default_scope('mmpretrain')
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert isinstance(model.backbone, NormFreeConverter)
    assert not any(isinstance(m, _BatchNorm) for m in model.modules())
    logits = model(torch.randn(2, 3, 32, 32), mode='tensor')
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    # what the README says of _delete_=True: without it the inherited
    # ResNet's keys land in the converter's arguments
    config.write_text('\n'.join(line for line in snippet.splitlines() if '_delete_' not in line))
    with pytest.raises(TypeError, match=r"NormFreeConverter: unknown options \[.*'depth'"):
        MODELS.build(Config.fromfile(config).model)
