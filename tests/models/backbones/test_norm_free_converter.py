import math

import pytest
import torch
import torch.nn as nn
from mmengine.dataset import pseudo_collate
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmpretrain.registry import DATASETS, MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from nofrost_mm.models.backbones import NormFreeConverter, convert_to_normfree
from nofrost_mm.models.backbones.nf_resnet import NormFreeBlock
from nofrost_mm.models.layers import ScaledWSConv2d

TINY = dict(stem_channels=8, base_channels=8)
FAMILIES = {
    'ResNet': dict(type='ResNet', depth=18, **TINY),
    'ResNetV1c': dict(type='ResNetV1c', depth=50, **TINY),
    'ResNetV1d': dict(type='ResNetV1d', depth=50, **TINY),
    'ResNeXt': dict(
        type='ResNeXt', depth=50, groups=2, width_per_group=4, **TINY),
    'SEResNet': dict(type='SEResNet', depth=50, se_ratio=4, **TINY),
    'ResNet_CIFAR': dict(
        type='ResNet_CIFAR', depth=18, norm_cfg=dict(type='SyncBN'), **TINY),
}


def _digits_batches(n_batches, batch_size=16):
    ds = DATASETS.build(
        dict(type='SklearnDigits', split='train', indices=64,
             pipeline=[dict(type='PackInputs')]))
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
            backbone=dict(type='NormFreeConverter',
                          backbone=FAMILIES[family]),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10,
                      in_channels=feat_dim),
            data_preprocessor=dict(
                num_classes=10, mean=[0.] * 3, std=[255.] * 3)))
    model.init_weights()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.05,
                                         momentum=0.9))
    losses = []
    for data in _digits_batches(3):
        losses.append(model.train_step(data, optim)['loss'].item())
    assert all(math.isfinite(v) for v in losses), losses
    assert all(
        torch.isfinite(p).all() for p in model.parameters()), family
    # SkipInit gains moved off zero: the branches learn
    gains = [b.last_conv.gain for b in model.modules()
             if isinstance(b, NormFreeBlock)]
    assert any(torch.count_nonzero(g) for g in gains)


def test_converted_block_is_nf_preactivation():
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    backbone = convert_to_normfree(
        MODELS.build(dict(type='ResNet', depth=50, **TINY)),
        alpha=0.3, zero_init_last=False)
    block = backbone.layer2[1]  # not a transition block
    x = torch.randn(2, 64, 4, 4)
    branch = block.conv3(
        torch.relu(block.conv2(torch.relu(block.conv1(
            torch.relu(x) * block.beta)))))
    assert torch.allclose(block(x), x + 0.3 * branch, atol=1e-6)
    # transition blocks reset the expected variance: beta=1/sqrt(1 + a^2)
    assert backbone.layer3[1].beta == pytest.approx((1 + 0.09)**-0.5)


def test_outputs_get_final_activation():
    init_default_scope('mmpretrain')
    model = NormFreeConverter(
        dict(type='ResNet', depth=18, out_indices=(1, 3), **TINY),
        zero_init_last=False)
    outs = model(torch.randn(2, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [16, 64]
    assert all((o >= 0).all() for o in outs)


@pytest.mark.parametrize('norm_cfg,name', [
    (dict(type='GN', num_groups=2), 'GroupNorm at "gn1"'),
    (dict(type='LN'), 'LayerNorm at "ln1"'),
])
def test_unsupported_norms_name_the_module(norm_cfg, name):
    init_default_scope('mmpretrain')
    with pytest.raises(TypeError, match=name):
        MODELS.build(
            dict(type='NormFreeConverter',
                 backbone=dict(type='ResNet', depth=18, norm_cfg=norm_cfg,
                               **TINY)))


def test_pretrained_init_cfg_keeps_branches_active(tmp_path):
    init_default_scope('mmpretrain')
    bn = MODELS.build(dict(type='ResNet', depth=18, **TINY))
    ckpt = tmp_path / 'bn.pth'
    torch.save({'state_dict': bn.state_dict()}, ckpt)
    model = NormFreeConverter(
        dict(type='ResNet', depth=18,
             init_cfg=dict(type='Pretrained', checkpoint=str(ckpt)), **TINY))
    model.init_weights()
    assert torch.equal(model.backbone.layer1[0].conv1.weight,
                       bn.layer1[0].conv1.weight)
    assert torch.all(model.backbone.layer1[0].last_conv.gain == 1)


def test_bad_backbone_argument():
    with pytest.raises(TypeError, match='backbone must be a config dict'):
        NormFreeConverter(backbone='ResNet')
