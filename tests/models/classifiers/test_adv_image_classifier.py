"""AdvImageClassifier: weighted clean/adv loss, separate vs concatenated passes."""

import pytest
import torch

from tests.attacks.toy import (
    NF_BACKBONE,
    adversarial_batch,
    build_classifier,
    clean_preprocess,
    digits_batch,
)

PGD_PRE = dict(
    type='PGDDataPreprocessor',
    mean=[0.0] * 3,
    std=[255.0] * 3,
    num_classes=10,
    eps=32,
    attack=dict(type='PGDAttack', steps=2),
)


def _batch(model, n=16):
    return adversarial_batch(model, digits_batch(n))


@pytest.mark.parametrize('weight', [0.5, 0.3, 1.0])
def test_separate_loss_is_the_weighted_sum_of_two_passes(weight):
    model = build_classifier(data_preprocessor=PGD_PRE, adv_loss_weight=weight)
    model.train()
    data = _batch(model)
    losses = model(**data, mode='loss')
    # BN in train mode: each pass normalizes with its own batch statistics
    clean = model.loss(data['inputs'], data['data_samples'])['loss']
    adv = model.loss(data['adv_inputs'], data['data_samples'])['loss']
    assert torch.allclose(losses['loss'], (1 - weight) * clean + weight * adv, atol=1e-5)
    logs = model.adv_log_vars
    assert torch.allclose(logs['loss_adv'], adv, atol=1e-5)
    assert 0 <= logs['acc_adv'] <= 100
    if weight < 1:
        assert torch.allclose(logs['loss_clean'], clean, atol=1e-5)
    else:
        assert 'loss_clean' not in logs


def test_concat_equals_separate_without_normalizers():
    """The cheaper single pass is exact for an NF model (no batch statistics)."""
    results = {}
    for mode in ('separate', 'concat'):
        model = build_classifier(
            NF_BACKBONE, data_preprocessor=PGD_PRE, adv_forward=mode, adv_loss_weight=0.3
        )
        model.train()
        data = _batch(model)
        results[mode] = model(**data, mode='loss')['loss']
        results[mode].backward()
        results[mode + '_grad'] = model.backbone.conv1.weight.grad.clone()
    assert torch.allclose(results['separate'], results['concat'], atol=1e-5)
    assert torch.allclose(results['separate_grad'], results['concat_grad'], atol=1e-5)


def test_concat_differs_from_separate_with_bn():
    losses = {}
    for mode in ('separate', 'concat'):
        model = build_classifier(data_preprocessor=PGD_PRE, adv_forward=mode)
        model.train()
        losses[mode] = model(**_batch(model), mode='loss')['loss']
    assert not torch.allclose(losses['separate'], losses['concat'])


def test_without_adv_inputs_it_is_an_image_classifier():
    model = build_classifier(data_preprocessor=PGD_PRE).eval()
    data = clean_preprocess(model, digits_batch(4), training=False)
    preds = model(**data, mode='predict')
    assert len(preds) == 4 and 'pred_label' in preds[0]
    assert model(data['inputs']).shape == (4, 10)
    with pytest.raises(RuntimeError, match='loss'):
        model(data['inputs'], data['data_samples'], mode='predict', adv_inputs=data['inputs'])


def test_label_smoothing_head_with_mixup():
    """The NoFrost recipe's LabelSmoothLoss, with Mixup's soft labels on top."""
    head = dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1),
    )
    model = build_classifier(
        head=head,
        data_preprocessor=dict(
            PGD_PRE, batch_augments=dict(augments=dict(type='Mixup', alpha=1.0))
        ),
    )
    model.train()
    data = _batch(model)
    losses = model(**data, mode='loss')
    clean = model.loss(data['inputs'], data['data_samples'])['loss']
    adv = model.loss(data['adv_inputs'], data['data_samples'])['loss']
    assert torch.allclose(losses['loss'], 0.5 * clean + 0.5 * adv, atol=1e-5)
    # every mixed image is attacked, within eps = 32/255 ([0, 1] inputs here);
    # (adv > clean is no guarantee on a random net: the attack runs with
    # eval-mode BN, the loss with train-mode BN)
    moved = (data['adv_inputs'] - data['inputs']).abs().flatten(1).amax(1)
    assert bool((moved > 0).all()) and float(moved.max()) <= 32 / 255 + 1e-6


def test_loss_mode_crafts_the_adversarial_batch_itself():
    """Without adv_inputs the model asks its preprocessor, passing itself
    (an NF model: no running statistics change between the two losses)."""
    model = build_classifier(NF_BACKBONE, data_preprocessor=PGD_PRE)
    model.train()
    torch.manual_seed(0)
    clean = model.data_preprocessor(digits_batch(16), training=True)
    assert set(clean) == {'inputs', 'data_samples'}  # the loss crafts the rest
    torch.manual_seed(1)
    own = model(clean['inputs'], clean['data_samples'], mode='loss')['loss']
    torch.manual_seed(1)
    adv = model.data_preprocessor.craft(model, clean['inputs'], clean['data_samples'])
    given = model(clean['inputs'], clean['data_samples'], mode='loss', adv_inputs=adv)['loss']
    assert torch.allclose(own, given, atol=1e-6)
