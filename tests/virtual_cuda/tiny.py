"""Tiny models and batches on the virtual CUDA device (tests/virtual_cuda)."""

import copy

import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import nofrost_mm  # noqa: F401
from nofrost_mm.attacks import NormalizedClassifier
from nofrost_mm.utils import sample_keys
from .vcuda import VDEV, to_vcuda

BN_BACKBONE = dict(
    type='ResNet_CIFAR', depth=18, stem_channels=8, base_channels=8, out_indices=(3,)
)
NF_BACKBONE = dict(
    type='NFResNet_CIFAR', depth=18, stem_channels=8, base_channels=8, out_indices=(3,)
)
PREPROCESSOR = dict(mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0], num_classes=10)
N, HW = 6, 8


def build(type: str = 'ImageClassifier', data_preprocessor=None, backbone=BN_BACKBONE, **kwargs):
    """A 10-class classifier of 8x8 images (on the CPU)."""
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type=type,
            backbone=copy.deepcopy(backbone),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=64),
            data_preprocessor=data_preprocessor or dict(PREPROCESSOR),
            **kwargs,
        )
    )


def on_device(model):
    """``model`` on the virtual device, as ``model.cuda()`` leaves it."""
    to_vcuda(model)
    preprocessor = getattr(model, 'data_preprocessor', None)
    if preprocessor is not None and hasattr(preprocessor, '_device'):
        preprocessor._device = VDEV
    return model


def eval_net(backbone=BN_BACKBONE, n: int = N):
    """(model, net, images, labels, keys): an eval-mode model on the device,
    its [0, 1] classifier and images it classifies as ``labels`` (every
    sample clean-correct, so every attack runs). Call inside
    :func:`virtual_cuda`."""
    model = on_device(build(backbone=backbone).eval())
    net = NormalizedClassifier.from_preprocessor(model).eval()
    torch.manual_seed(1)
    images = torch.rand(n, 3, HW, HW, device='cuda')
    with torch.no_grad():
        labels = net(images).argmax(1)
    keys = sample_keys(0, torch.arange(n, device='cuda'))
    return model, net, images, labels, keys


def batch(n: int = N, idx0: int = 0, labels=None) -> dict:
    """A dataloader batch of uint8 images (on the host, as loaders give)."""
    g = torch.Generator().manual_seed(idx0)
    samples = []
    for i in range(n):
        label = int(torch.randint(10, (1,), generator=g)) if labels is None else int(labels[i])
        samples.append(
            dict(
                inputs=torch.randint(0, 256, (3, HW, HW), dtype=torch.uint8, generator=g),
                data_samples=DataSample(metainfo=dict(sample_idx=idx0 + i)).set_gt_label(label),
            )
        )
    return pseudo_collate(samples)


def at_model(backbone=BN_BACKBONE, attack=None, prekw=None, **recipe):
    """A training-mode :class:`AdvImageClassifier` on the device, at eps 8."""
    pre = dict(
        PREPROCESSOR,
        type='PGDDataPreprocessor',
        eps=8,
        attack=attack or dict(type='PGDAttack', steps=2),
        **(prekw or {}),
    )
    return on_device(
        build('AdvImageClassifier', data_preprocessor=pre, backbone=backbone, **recipe)
    ).train()
