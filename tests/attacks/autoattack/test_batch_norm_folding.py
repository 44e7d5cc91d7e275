"""Eval BatchNorm folded into the conv before it: same logits; only a conv's own output."""

import functools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from nofrost_mm.attacks import AutoAttack
from nofrost_mm.attacks.autoattack.batch_norm_folding import conv_bn_pairs, fold_batch_norm
from nofrost_mm.models.layers import ScaledWSConv2d
from nofrost_mm.utils.sample_random import sample_keys
from ..toy import digits_8x8, train_on_digits_8x8


class ConvBNNet(nn.Module):
    """conv-BN-ReLU, a residual block whose second BN reads the sum, and a
    conv whose output feeds a BN and the shortcut too."""

    def __init__(self, shared_output=False):
        super().__init__()
        self.shared_output = shared_output
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.bn_sum = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        out = self.conv2(x)
        shortcut = out if self.shared_output else x
        out = F.relu(self.bn2(out)) + shortcut
        out = self.bn_sum(out)  # reads a sum, not a conv's output
        return self.fc(out.mean((2, 3)))


def _random_stats(model):
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return model.eval().requires_grad_(False)


@pytest.mark.parametrize('channels_last', [False, True])
def test_folded_copy_has_the_same_logits_and_leaves_the_model_alone(channels_last):
    model = _random_stats(ConvBNNet())
    x = torch.rand(6, 3, 8, 8)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    logits = model(x)
    folded, count = fold_batch_norm(model, x, logits)
    assert count == 2 and folded is not model
    assert isinstance(folded.bn1, nn.Identity) and isinstance(folded.bn2, nn.Identity)
    assert isinstance(folded.bn_sum, nn.BatchNorm2d)
    assert torch.allclose(folded(x), logits, atol=1e-5)
    assert folded.conv2.weight.is_contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format
    )
    assert not any(p.requires_grad for p in folded.parameters())
    # the caller's model is untouched
    assert isinstance(model.bn1, nn.BatchNorm2d)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    # input gradients agree as well
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(xg)[:, 3].sum(), xg)
    xg = x.clone().requires_grad_(True)
    (gf,) = torch.autograd.grad(folded(xg)[:, 3].sum(), xg)
    assert torch.allclose(g, gf, atol=1e-5)


def test_a_conv_output_read_elsewhere_too_leaves_the_model_unfolded():
    model = _random_stats(ConvBNNet(shared_output=True))
    x = torch.rand(6, 3, 8, 8)
    # the dataflow pairs conv2 with bn2, but its output is also the shortcut
    assert ('conv2', 'bn2') in conv_bn_pairs(model, x)
    folded, count = fold_batch_norm(model, x, model(x))
    assert folded is model and count == 0


def test_train_mode_bn_and_weight_standardised_convs_are_not_folded():
    model = _random_stats(ConvBNNet())
    model.bn1.train()
    x = torch.rand(6, 3, 8, 8)
    assert [b for _, b in conv_bn_pairs(model, x)] == ['bn2']
    ws = nn.Sequential(ScaledWSConv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    assert conv_bn_pairs(ws, x) == []
    assert fold_batch_norm(ws, x, ws(x)) == (ws, 0)


class TinyBNCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.fc(x.flatten(1))


@functools.lru_cache(maxsize=None)
def _trained_bn_state():
    return train_on_digits_8x8(TinyBNCNN)


def test_autoattack_on_the_folded_model_breaks_the_same_samples():
    model = TinyBNCNN()
    model.load_state_dict(_trained_bn_state())
    model.eval().requires_grad_(False)
    x, y = digits_8x8(24, 'test')
    keys = sample_keys(0, torch.arange(len(x)))
    folded = AutoAttack(eps=12)(model, x, y, keys=keys)
    plain = AutoAttack(eps=12, fold_batch_norm=False)(model, x, y, keys=keys)
    correct = model(x).argmax(1) == y
    broken = model(folded).argmax(1) != y
    plain_broken = model(plain).argmax(1) != y
    assert int(correct.sum()) >= 18
    # non-trivial: some correct samples broken, some robust
    assert 0 < int((plain_broken & correct).sum()) < int(correct.sum())
    # the same function up to float rounding: a borderline sample may flip
    assert int((broken != plain_broken).sum()) <= 1
    assert isinstance(model.bn1, nn.BatchNorm2d)  # the model itself unfolded


def test_a_layer_called_twice_is_not_folded():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.bn = nn.BatchNorm2d(3)

        def forward(self, x):
            return self.bn(self.conv(self.bn(self.conv(x)))).mean((2, 3))

    model = _random_stats(Twice())
    x = torch.rand(2, 3, 8, 8)
    assert conv_bn_pairs(model, x) == []


def test_the_folded_copy_is_made_once_while_the_model_is_unchanged():
    model = _random_stats(ConvBNNet())
    x = torch.rand(6, 3, 8, 8)
    first, count = fold_batch_norm(model, x, model(x))
    assert count == 2
    # a robust test's next batch: the same copy, checked on its images
    x2 = torch.rand(5, 3, 8, 8)
    assert fold_batch_norm(model, x2, model(x2)) == (first, 2)
    # a changed weight (an optimizer step, a loaded checkpoint) folds anew
    with torch.no_grad():
        model.conv1.weight.mul_(1.5)
        model.bn1.running_var.mul_(2)
    again, count = fold_batch_norm(model, x2, model(x2))
    assert count == 2 and again is not first
    assert torch.allclose(again(x2), model(x2), atol=1e-5)
    # so does a BatchNorm switched to train mode (it cannot fold then)
    model.bn2.train()
    train_mode, count = fold_batch_norm(model, x2, model(x2))
    assert count == 1 and isinstance(train_mode.bn2, nn.BatchNorm2d)
    model.eval()
    # a copy never changes the caller's model, whose logits it is checked on
    assert isinstance(model.bn1, nn.BatchNorm2d)


def test_the_cached_copy_goes_with_the_model():
    import gc
    import weakref

    from nofrost_mm.attacks.autoattack import batch_norm_folding

    model = _random_stats(ConvBNNet())
    x = torch.rand(4, 3, 8, 8)
    folded, _ = fold_batch_norm(model, x, model(x))
    gone = weakref.ref(folded)
    assert model in batch_norm_folding._FOLDED
    del model, folded
    gc.collect()
    assert gone() is None


def test_sync_batch_norm_in_eval_mode_folds():
    model = _random_stats(nn.SyncBatchNorm.convert_sync_batchnorm(ConvBNNet()))
    for m in model.modules():  # _random_stats knows BatchNorm2d only
        if isinstance(m, nn.SyncBatchNorm):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    assert isinstance(model.bn1, nn.SyncBatchNorm)
    x = torch.rand(6, 3, 8, 8)
    logits = model(x)  # eval mode: no process group needed
    folded, count = fold_batch_norm(model, x, logits)
    assert count == 2 and isinstance(folded.bn1, nn.Identity)
    assert isinstance(folded.bn_sum, nn.SyncBatchNorm)
    assert torch.allclose(folded(x), logits, atol=1e-5)


def test_a_model_made_in_inference_mode_is_folded_every_call():
    with torch.inference_mode():
        model = _random_stats(ConvBNNet())
    x = torch.rand(4, 3, 8, 8)
    first, count = fold_batch_norm(model, x, model(x))
    again, _ = fold_batch_norm(model, x, model(x))
    assert count == 2 and again is not first  # no version counter to trust
