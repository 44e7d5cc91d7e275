"""PGDDataPreprocessor: the acceptance test of adversarial examples, modes, checks."""

import copy
import pickle

import pytest
import torch
import torch.nn.functional as F
import torchattacks
from mmpretrain.registry import MODELS

from nofrost_mm.attacks import NormalizedClassifier
from nofrost_mm.models.data_preprocessors import PGDDataPreprocessor
from tests.attacks.toy import (
    adversarial_batch,
    build_classifier,
    clean_preprocess,
    digits_batch,
    trained_classifier,
)

# the digits normalization the toy classifiers are trained with (grey digits:
# the BGR->RGB flip changes nothing for the model but runs the code path)
MEAN, STD = [0.0, 0.0, 0.0], [255.0, 255.0, 255.0]
PGD_PRE = dict(
    type='PGDDataPreprocessor',
    mean=MEAN,
    std=STD,
    to_rgb=True,
    num_classes=10,
    eps=8,
    attack=dict(type='PGDAttack', steps=10),
)


def _pixels(pre, inputs):
    """Normalized batch back to [0, 1] pixels (in RGB order)."""
    return (inputs * pre.std + pre.mean) / 255.0


def _state(model):
    return (
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        {k: v.clone() for k, v in model.state_dict().items()},
    )


def test_adversarial_examples_acceptance():
    """Within eps and the valid range, at least as strong as torchattacks.PGD,
    model mode / requires_grad / BN statistics untouched."""
    model = trained_classifier('bn', data_preprocessor=PGD_PRE)
    pre = model.data_preprocessor
    model.train()
    model.backbone.layer1.eval()  # mixed modes
    model.backbone.conv1.weight.requires_grad_(False)  # a frozen parameter
    before = _state(model)

    data = digits_batch(64, split='test')
    out = adversarial_batch(model, copy.deepcopy(data), seed=1)
    after = _state(model)
    assert after[0] == before[0] and after[1] == before[1]
    for key, value in before[2].items():
        assert torch.equal(after[2][key], value), key

    clean, adv = _pixels(pre, out['inputs']), _pixels(pre, out['adv_inputs'])
    assert adv.min() >= -1e-6 and adv.max() <= 1 + 1e-6
    assert (adv - clean).abs().max() * 255 <= 8 + 1e-3
    assert (adv - clean).abs().max() * 255 > 4

    labels = torch.cat([s.gt_label for s in out['data_samples']])
    model.eval()
    net = NormalizedClassifier(model, MEAN, STD)  # inputs already RGB here
    reference = torchattacks.PGD(net, eps=8 / 255, alpha=1 / 255, steps=10)
    torch.manual_seed(1)
    ref_adv = reference(clean.clamp(0, 1), labels)
    with torch.no_grad():
        clean_loss = F.cross_entropy(net(clean), labels).item()
        ours = F.cross_entropy(net(adv), labels).item()
        ref = F.cross_entropy(net(ref_adv), labels).item()
    # what the attack guarantees, on any float path: at least as strong as an
    # independent PGD on the same weights (a briefly trained toy's loss gap
    # itself moves with the CPU's kernels)
    assert ref > clean_loss, (ref, clean_loss)
    assert ours >= ref - 1e-3, (ours, ref)


def test_eps_is_in_pixel_space_whatever_the_normalization():
    mean, std = [120.0, 110.0, 100.0], [60.0, 50.0, 40.0]
    model = build_classifier(data_preprocessor=dict(PGD_PRE, mean=mean, std=std))
    pre = model.data_preprocessor
    data = digits_batch(16)
    data['inputs'][0][0] = 255  # a saturated channel: the range clamp must act
    out = adversarial_batch(model, data)
    clean, adv = _pixels(pre, out['inputs']), _pixels(pre, out['adv_inputs'])
    assert adv.min() >= -1e-5 and adv.max() <= 1 + 1e-5
    assert 7.9 < (adv - clean).abs().max() * 255 <= 8 + 1e-3


def test_attack_model_mode_train_keeps_bn_statistics():
    model = trained_classifier('bn', data_preprocessor=dict(PGD_PRE, attack_model_mode='train'))
    model.eval()
    before = _state(model)
    adversarial_batch(model, digits_batch(16))
    after = _state(model)
    assert after[0] == before[0] and after[1] == before[1]
    for key, value in before[2].items():
        assert torch.equal(after[2][key], value), key


def test_mixup_soft_labels_are_attacked():
    model = build_classifier(
        data_preprocessor=dict(PGD_PRE, batch_augments=dict(augments=dict(type='Mixup', alpha=1.0)))
    )
    out = adversarial_batch(model, digits_batch(8))
    scores = torch.stack([s.gt_score for s in out['data_samples']])
    assert (scores.max(dim=1).values < 1).any()  # really mixed
    assert out['adv_inputs'].shape == out['inputs'].shape
    assert torch.isfinite(model(**out, mode='loss')['loss'])


def test_weight_zero_is_standard_training_and_test_is_plain():
    model = build_classifier(data_preprocessor=PGD_PRE, adv_loss_weight=0)
    data = digits_batch(4)
    # the model asks for no adversarial batch
    out = model.data_preprocessor(copy.deepcopy(data), training=True)
    assert set(out) == {'inputs', 'data_samples'}
    calls = []
    model.data_preprocessor.craft = lambda *a: calls.append(1)
    model.train()
    model(**out, mode='loss')
    assert not calls
    plain = clean_preprocess(model, copy.deepcopy(data), training=False)
    out = model.data_preprocessor(copy.deepcopy(data), training=False)
    assert torch.equal(out['inputs'], plain['inputs'])


def test_training_forward_is_the_clean_batch():
    """The adversarial batch is AdvImageClassifier's (its loss crafts it)."""
    model = build_classifier(data_preprocessor=PGD_PRE)
    data = digits_batch(4)
    torch.manual_seed(0)
    out = model.data_preprocessor(copy.deepcopy(data), training=True)
    torch.manual_seed(0)
    plain = clean_preprocess(model, copy.deepcopy(data), training=True)
    assert set(out) == {'inputs', 'data_samples'}
    assert torch.equal(out['inputs'], plain['inputs'])


@pytest.mark.parametrize(
    'key,new',
    [
        ('adv_loss_weight', 'model.adv_loss_weight'),
        ('adv_loss', 'model.adv_loss'),
        ('trades_beta', 'model.trades_beta'),
        ('adv_forward', 'model.adv_forward'),
        ('test_attack', 'AdversarialTrainingHook.val_attack'),
        (
            'adv_batch',
            "model.type='AdvImageClassifier'.*adv_loss_weight=0.5 with "
            "model.adv_forward='concat'.*adv_loss_weight=1.0",
        ),
    ],
)
def test_moved_keys_name_their_new_home(key, new):
    with pytest.raises(ValueError, match=f'data_preprocessor.{key} moved to {new}'):
        MODELS.build(dict(PGD_PRE, **{key: 0.5}))


def test_schedule_scales_the_configured_eps():
    pre = MODELS.build(PGD_PRE)
    pre.schedule(0.25, steps=3)
    assert pre.budget == dict(eps=2.0, steps=3.0) and pre.train_eps == 8
    assert pre.eps == 2.0 and pre.attack.eps == 2.0  # what the attack runs at
    pre.schedule()
    assert pre.budget == dict(eps=8.0, steps=10.0) and pre.eps == 8.0
    with pytest.raises(AttributeError):  # schedule() is the one writer
        pre.train_eps = 4
    with pytest.raises(AttributeError):
        pre.eps = 4


def test_an_attack_without_eps_has_no_training_eps():
    """torchattacks' CW has an `eps` attribute set to None: no eps to log."""
    pre = MODELS.build(dict(PGD_PRE, eps=None, attack=dict(type='CW', steps=2)))
    assert pre.train_eps is None and pre.eps is None
    assert 'eps' not in pre.budget
    with pytest.raises(TypeError, match='CW has no eps to schedule'):
        pre.schedule(0.5)


@pytest.mark.parametrize(
    'override,key',
    [
        (dict(attack_model_mode='test'), 'attack_model_mode'),
        (dict(pad_size_divisor=32), 'pad_size_divisor'),
        (dict(eps=-1), 'attack.*eps'),
        (dict(attack=dict(type='PGDAttack', steps=0)), 'attack.*steps'),
        (dict(attack=dict(type='PGDAttack', step_size=0)), 'attack.*step_size'),
        (dict(attack=dict(type='PGDAttack', norm='L1')), 'attack.*norm'),
    ],
)
def test_bad_settings_name_the_key(override, key):
    with pytest.raises(ValueError, match=f'data_preprocessor.{key}'):
        MODELS.build(dict(PGD_PRE, **override))


def test_model_deepcopies_and_pickles():
    model = build_classifier(data_preprocessor=PGD_PRE)
    model.data_preprocessor.schedule(0.5)
    twin = copy.deepcopy(model)
    twin.data_preprocessor.schedule(0.25)  # the copy owns its own budget
    assert twin.data_preprocessor.eps == 2.0 and model.data_preprocessor.eps == 4.0
    clone = pickle.loads(pickle.dumps(model))
    assert isinstance(clone.data_preprocessor, PGDDataPreprocessor)
    assert clone.data_preprocessor.train_eps == 8 and clone.data_preprocessor.eps == 4.0


def test_attack_under_autocast_stays_within_eps():
    """Training runs the preprocessor inside the optim wrapper's autocast (--amp)."""
    model = build_classifier(data_preprocessor=PGD_PRE)
    pre = model.data_preprocessor
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = adversarial_batch(model, digits_batch(8))
    assert out['adv_inputs'].dtype == out['inputs'].dtype == torch.float32
    delta = (_pixels(pre, out['adv_inputs']) - _pixels(pre, out['inputs'])).abs().max()
    assert 4 < delta * 255 <= 8 + 1e-3


def test_the_training_eps_is_written_once():
    pre = MODELS.build(dict(PGD_PRE, eps=16, attack=dict(type='PGDAttack', steps=2)))
    assert pre.train_eps == pre.attack.eps == 16
    # the old second spelling fails naming the key, with or without `eps`
    for eps in (None, 16):
        with pytest.raises(
            ValueError, match='data_preprocessor.attack.eps moved to data_preprocessor.eps'
        ):
            MODELS.build(dict(PGD_PRE, eps=eps, attack=dict(type='PGDAttack', eps=8)))
