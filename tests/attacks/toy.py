"""Tiny classifiers and real digits batches shared by the adversarial-training tests."""

import copy
import functools

import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmpretrain.registry import DATASETS, MODELS

import nofrost_mm  # noqa: F401  (registers the plug-in)
from nofrost_mm.attacks import NormalizedClassifier

BN_BACKBONE = dict(
    type='ResNet_CIFAR', depth=18, stem_channels=8, base_channels=8, out_indices=(3,)
)
NF_BACKBONE = dict(
    type='NFResNet_CIFAR', depth=18, stem_channels=8, base_channels=8, out_indices=(3,)
)
DIGITS_PREPROCESSOR = dict(mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0], num_classes=10)


@functools.lru_cache(maxsize=None)
def _digits(split):
    return DATASETS.build(
        dict(type='SklearnDigits', split=split, pipeline=[dict(type='PackInputs')])
    )


def digits_batch(n=32, split='train', start=0):
    """A batch of real digits as a dataloader gives it (uint8, pseudo_collate)."""
    ds = _digits(split)
    return pseudo_collate([ds[(start + i) % len(ds)] for i in range(n)])


def digits_8x8(n, split, start=0):
    """``n`` real digits as float images in [0, 1] pooled to 8x8, and labels."""
    data = digits_batch(n, split=split, start=start)
    x = torch.stack(data['inputs']).float() / 255.0
    y = torch.tensor([d.gt_label.item() for d in data['data_samples']])
    return torch.nn.functional.avg_pool2d(x, 4), y


def train_on_digits_8x8(model_class, steps=150):
    """The state of ``model_class()`` (seed 0) after ``steps`` Adam steps on
    batches of 64 training digits at 8x8: the attack tests' tiny CNNs."""
    torch.manual_seed(0)
    model = model_class()
    x, y = digits_8x8(1024, 'train')
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for i in range(steps):
        idx = torch.arange(i * 64, (i + 1) * 64) % len(x)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.state_dict()


def build_classifier(
    backbone=BN_BACKBONE,
    type='AdvImageClassifier',
    head=None,
    data_preprocessor=None,
    seed=0,
    **recipe,
):
    """A tiny classifier; ``recipe`` are model keys (adv_loss_weight, ...)."""
    init_default_scope('mmpretrain')
    torch.manual_seed(seed)
    cfg = dict(
        type=type,
        backbone=copy.deepcopy(backbone),
        neck=dict(type='GlobalAveragePooling'),
        head=head or dict(type='LinearClsHead', num_classes=10, in_channels=64),
        data_preprocessor=copy.deepcopy(data_preprocessor or DIGITS_PREPROCESSOR),
        **recipe,
    )
    return MODELS.build(cfg)


def adversarial_batch(model, data, seed=0):
    """A preprocessed training batch with its ``adv_inputs``, as
    AdvImageClassifier's loss crafts them."""
    pre = model.data_preprocessor
    torch.manual_seed(seed)
    data = pre(data, training=True)
    data['adv_inputs'] = pre.craft(model, data['inputs'], data['data_samples'])
    return data


def train_briefly(model, iters=40, batch=32, lr=0.01):
    """A few standard SGD steps on real digits, so attacks have something to break."""
    optim = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()
    for i in range(iters):
        data = digits_batch(batch, start=i * batch)
        data = clean_preprocess(model, data)
        loss = sum(v for k, v in model(**data, mode='loss').items() if 'loss' in k)
        optim.zero_grad()
        loss.backward()
        optim.step()
    return model.eval()


def clean_preprocess(model, data, training=True):
    """The plain ClsDataPreprocessor path of a model's preprocessor (no attack)."""
    from mmpretrain.models.utils.data_preprocessor import ClsDataPreprocessor

    return ClsDataPreprocessor.forward(model.data_preprocessor, data, training)


@functools.lru_cache(maxsize=None)
def _trained_state(kind):
    backbone = dict(bn=BN_BACKBONE, nf=NF_BACKBONE)[kind]
    return train_briefly(build_classifier(backbone, type='ImageClassifier')).state_dict()


def trained_classifier(kind='bn', type='AdvImageClassifier', data_preprocessor=None):
    """A tiny classifier ('bn' or 'nf') trained briefly on digits.

    Trained once per test process and reloaded, so tests can change it freely
    (the 'bn' one reaches about 80% test accuracy).
    """
    model = build_classifier(
        dict(bn=BN_BACKBONE, nf=NF_BACKBONE)[kind], type=type, data_preprocessor=data_preprocessor
    )
    model.load_state_dict(_trained_state(kind))
    return model.eval()


def _digits_8x8_classifier():
    return NormalizedClassifier(build_classifier(), [0.0] * 3, [255.0] * 3)


@functools.lru_cache(maxsize=None)
def _confident_state():
    state = train_on_digits_8x8(_digits_8x8_classifier)
    return {k[len('classifier.') :]: v for k, v in state.items()}


def confident_classifier(logit_scale=10.0, data_preprocessor=None, **recipe):
    """The tiny BN ResNet trained (seconds) on 8x8 digits, logits x ``logit_scale``.

    About 97% test accuracy on ``digits_8x8``; its head's weights and bias
    times ``logit_scale`` make it as confident as a well-trained net: at 10
    most of its fp16 input-gradient entries underflow to 0 under naive
    autocast (the mixed-precision tests check it). Its inputs are [0, 1]
    images (preprocessor mean 0, std 255); ``recipe`` are model keys.
    """
    pre = dict(DIGITS_PREPROCESSOR, **(data_preprocessor or {}))
    model = build_classifier(data_preprocessor=pre, **recipe)
    model.load_state_dict(_confident_state())
    with torch.no_grad():
        model.head.fc.weight.mul_(logit_scale)
        model.head.fc.bias.mul_(logit_scale)
    return model.eval()
