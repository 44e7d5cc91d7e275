"""NormalizedClassifier: same logits as ClsDataPreprocessor + classifier, usable by torchattacks."""

import pytest
import torch
import torchattacks
from mmpretrain.models.utils.data_preprocessor import ClsDataPreprocessor

from nofrost_mm.attacks import NormalizedClassifier
from tests.attacks.toy import build_classifier, digits_batch

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def test_matches_the_preprocessor_path():
    model = build_classifier(
        type='ImageClassifier', data_preprocessor=dict(mean=MEAN, std=STD, to_rgb=True)
    ).eval()
    data = digits_batch(8)
    # a BGR-looking batch: channels differ, so the flip matters
    data['inputs'] = [
        img * torch.tensor([1, 0, 1], dtype=torch.uint8).view(3, 1, 1) for img in data['inputs']
    ]
    ref_inputs = ClsDataPreprocessor.forward(model.data_preprocessor, data)['inputs']
    raw = torch.stack(data['inputs']).float() / 255.0
    net = NormalizedClassifier(model, MEAN, STD, to_rgb=True)
    with torch.no_grad():
        assert torch.allclose(net.normalize(raw), ref_inputs, atol=1e-5)
        assert torch.allclose(net(raw), model(ref_inputs, mode='tensor'), atol=1e-5)


def test_torchattacks_take_it_as_model():
    model = build_classifier(type='ImageClassifier').eval()
    data = digits_batch(4)
    raw = torch.stack(data['inputs']).float() / 255.0
    labels = torch.cat([s.gt_label for s in data['data_samples']])
    net = NormalizedClassifier(model, [0.0] * 3, [255.0] * 3)
    adv = torchattacks.PGD(net, eps=8 / 255, steps=2)(raw, labels)
    assert (adv - raw).abs().max() <= 8 / 255 + 1e-6


def test_mean_without_std_is_refused():
    with pytest.raises(ValueError, match='mean.*std'):
        NormalizedClassifier(torch.nn.Identity(), mean=[0.0])


def test_a_one_image_batch_keeps_its_class_dimension():
    """mmpretrain's LeNet5 squeezes the logits of one image to (K,): the
    last survivor of an attack on the stock lenet5_mnist config crashed
    PGDAttack (IndexError in logits.size(1))."""
    from mmpretrain.models import ImageClassifier

    from nofrost_mm.attacks import PGDAttack

    # the model of mmpretrain's lenet/lenet5_mnist.py
    model = ImageClassifier(
        backbone=dict(type='LeNet5', num_classes=10), head=dict(type='ClsHead')
    ).eval()
    net = NormalizedClassifier(model)
    image = torch.rand(1, 1, 32, 32)
    assert model(image, mode='tensor').shape == (10,)  # the squeeze
    assert net(image).shape == (1, 10)
    adv = PGDAttack(eps=8, steps=2)(net, image, torch.tensor([3]))
    assert adv.shape == image.shape
