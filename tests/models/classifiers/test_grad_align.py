"""AdvImageClassifier's GradAlign term: its value, double backprop, BN statistics."""

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from tests.attacks.toy import NF_BACKBONE, adversarial_batch, build_classifier, digits_batch

PRE = dict(
    type='PGDDataPreprocessor',
    mean=[0.0] * 3,
    std=[255.0] * 3,
    num_classes=10,
    eps=32,
    attack=dict(type='FGSMRS', random_start=False, step_ratio=1.0),
)


def _model_and_batch(backbone=None, **pre):
    kwargs = {} if backbone is None else dict(backbone=backbone)
    model = build_classifier(data_preprocessor=dict(PRE, **pre), **kwargs)
    model.train()
    return model, adversarial_batch(model, digits_batch(16))


def _input_grad(model, x, y):
    x = x.clone().requires_grad_(True)
    logits = model(x, mode='tensor')  # digits' mean 0, std 255: normalized = pixels
    return torch.autograd.grad(F.cross_entropy(logits, y), x, create_graph=True)[0]


def test_value_is_one_minus_the_mean_cosine_at_a_uniform_point():
    model, data = _model_and_batch(NF_BACKBONE)  # no BN: modes do not matter
    model.grad_align_lambda = 0.7
    x, samples = data['inputs'], data['data_samples']
    y = torch.cat([s.gt_label for s in samples])
    torch.manual_seed(5)
    reg, cos, dropped = model.grad_align(x, samples)
    assert dropped == 0
    torch.manual_seed(5)  # replay the noise
    eta = torch.empty_like(x).uniform_(-32 / 255, 32 / 255)
    model.eval()
    g1 = _input_grad(model, x, y).flatten(1)
    g2 = _input_grad(model, (x + eta).clamp(0, 1), y).flatten(1)
    expected = F.cosine_similarity(g1, g2, dim=1).mean()
    assert cos == pytest.approx(expected.item(), abs=1e-5)
    assert reg.item() == pytest.approx(1 - expected.item(), abs=1e-5)
    model.train()
    torch.manual_seed(0)
    losses = model(**data, mode='loss')
    assert losses['loss_grad_align'] > 0 and 'grad_align_cos' in model.adv_log_vars


def test_weights_get_the_double_backprop_gradient_and_bn_stats_stay():
    model, data = _model_and_batch(attack_model_mode='train')
    buffers = {k: v.clone() for k, v in model.state_dict().items() if 'running' in k}
    reg, _, _ = model.grad_align(data['inputs'], data['data_samples'])
    grads = torch.autograd.grad(reg, [model.backbone.conv1.weight, model.head.fc.weight])
    assert all(g.abs().sum() > 0 for g in grads)  # through the input gradient
    for key, value in buffers.items():
        assert torch.equal(model.state_dict()[key], value), key
    assert model.training and all(
        m.momentum == 0.1 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)
    )


def test_bad_lambda_names_the_key():
    with pytest.raises(ValueError, match='model.grad_align_lambda'):
        MODELS.build(
            dict(
                type='AdvImageClassifier',
                grad_align_lambda=-1,
                backbone=dict(type='ResNet_CIFAR', depth=18),
            )
        )
