"""Dual BN under AdvImageClassifier: which branch each pass takes, in training,
validation, AutoAttack and tools/test.py."""

import json

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmpretrain.registry import MODELS

from nofrost_mm.attacks import AutoAttack
from nofrost_mm.models.layers import DualBatchNorm, dual_bn_route
from tests.attacks.toy import BN_BACKBONE, build_classifier, digits_batch
from tests.conftest import run_tool
from tests.tools.user_path_runs import run_main

DUAL_BACKBONE = dict(BN_BACKBONE, norm_cfg=dict(type='DualBN'))
PGD_PRE = dict(
    type='PGDDataPreprocessor',
    mean=[0.0] * 3,
    std=[255.0] * 3,
    num_classes=10,
    eps=32,
    attack=dict(type='PGDAttack', steps=2),
)
DUALBN_CONFIG = 'configs/dualbn/resnet18-w16-dualbn_1xb64_digits_pgdat.py'


def _record_routes(model):
    """(branch, training) of every pass through the stem's DualBatchNorm."""
    layer = model.backbone.bn1
    assert isinstance(layer, DualBatchNorm)
    seen = []
    layer.register_forward_pre_hook(
        lambda m, args: seen.append((m.deploy_branch if m.route is None else m.route, m.training))
    )
    return seen


@pytest.mark.parametrize('forward', ['separate', 'concat'])
def test_clean_pass_takes_the_clean_branch_attack_and_adv_pass_the_adversarial(forward):
    model = build_classifier(
        DUAL_BACKBONE, data_preprocessor=PGD_PRE, adv_forward=forward, adv_loss_weight=0.3
    )
    model.train()
    data = model.data_preprocessor(digits_batch(16), training=True)
    seen = _record_routes(model)
    losses = model(**data, mode='loss')
    attack, training = (
        seen[: -2 if forward == 'separate' else -1],
        seen[-2 if forward == 'separate' else -1 :],
    )
    assert attack and set(attack) == {('adv', False)}  # PGD in eval mode
    if forward == 'separate':
        assert training == [('clean', True), ('adv', True)]
    else:  # one pass: the first 16 rows clean, the rest adversarial
        assert training == [(16, True)]
    for m in model.modules():
        if isinstance(m, DualBatchNorm):  # one training batch per branch
            assert m.num_batches_tracked.tolist() == [1, 1]
            assert m.route is None  # routes restored
    # the loss is the mix of the branches' own losses
    adv = model.data_preprocessor.craft(model, data['inputs'], data['data_samples'])
    with dual_bn_route(model, 'clean'):
        clean_loss = model.loss(data['inputs'], data['data_samples'])['loss']
    with dual_bn_route(model, 'adv'):
        adv_loss = model.loss(adv, data['data_samples'])['loss']
    again = model(data['inputs'], data['data_samples'], mode='loss', adv_inputs=adv)
    torch.testing.assert_close(again['loss'], 0.7 * clean_loss + 0.3 * adv_loss)
    assert torch.isfinite(losses['loss'])


def test_pure_adversarial_training_trains_only_the_adversarial_branch():
    model = build_classifier(DUAL_BACKBONE, data_preprocessor=PGD_PRE, adv_loss_weight=1.0)
    model.train()
    data = model.data_preprocessor(digits_batch(8), training=True)
    model(**data, mode='loss')['loss'].backward()
    layer = model.backbone.bn1
    assert layer.num_batches_tracked.tolist() == [0, 1]
    assert torch.count_nonzero(layer.weight.grad[: layer.num_features]) == 0
    assert torch.count_nonzero(layer.weight.grad[layer.num_features :]) > 0


@pytest.mark.parametrize('branch', ['clean', 'adv'])
def test_prediction_and_autoattack_use_deploy_branch(branch):
    model = build_classifier(
        dict(DUAL_BACKBONE, norm_cfg=dict(type='DualBN', deploy_branch=branch)),
        data_preprocessor=PGD_PRE,
    ).eval()
    seen = _record_routes(model)
    data = model.data_preprocessor(digits_batch(4), training=False)
    model(**data, mode='predict')

    class Logits(nn.Module):
        def __init__(self, classifier):
            super().__init__()
            self.classifier = classifier

        def forward(self, x):
            return self.classifier(x * 255.0, mode='tensor')

    images = data['inputs'] / 255.0
    with torch.no_grad():
        labels = Logits(model)(images).argmax(dim=1)  # every image correct
    AutoAttack(eps=32)(Logits(model), images, labels)
    assert len(seen) > 3 and set(seen) == {(branch, False)}


def test_tools_test_evaluates_the_configured_branch(
    tmp_path, standard_digits_checkpoint, monkeypatch
):
    """A BN checkpoint in both branches, the adversarial one then broken:
    tools/test.py gives the BN model's accuracy with deploy_branch='clean' and
    the broken branch's with 'adv'."""
    cfg = Config.fromfile(DUALBN_CONFIG)
    init_default_scope('mmpretrain')
    model = MODELS.build(dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
    load_checkpoint(model, str(standard_digits_checkpoint), strict=True)
    stem = model.backbone.bn1
    with torch.no_grad():  # the adversarial branch's stem: zero
        stem.weight[stem.num_features :] = 0.0
        stem.bias[stem.num_features :] = 0.0
    dual = tmp_path / 'dual.pth'
    torch.save(dict(state_dict=model.state_dict(), meta={}), dual)
    # the 'adv' branch by the command, the rest by tools/test.py's main in
    # this process (a process would spend most of its time importing torch)
    results = {}
    for branch in ('clean', 'adv'):
        out = tmp_path / f'{branch}.json'
        argv = [
            DUALBN_CONFIG,
            dual,
            '--work-dir',
            tmp_path / branch,
            '--out',
            out,
            '--attacks',
            'none',
            '--cfg-options',
            f'model.backbone.norm_cfg.deploy_branch={branch}',
        ]
        if branch == 'adv':
            run_tool(['tools/test.py', *argv])
        else:
            run_main(monkeypatch, 'tools/test.py', argv)
        results[branch] = json.loads(out.read_text())
    out = tmp_path / 'bn.json'
    run_main(
        monkeypatch,
        'tools/test.py',
        [
            'configs/demo/resnet18-w16_1xb64_digits.py',
            standard_digits_checkpoint,
            '--work-dir',
            tmp_path / 'bn',
            '--out',
            out,
            '--attacks',
            'none',
        ],
    )
    plain = json.loads(out.read_text())
    key = 'accuracy/top1'
    assert results['clean'][key] == plain[key] > 50
    # a zero stem makes every image the same: one class's share (digits: ~10%)
    assert results['adv'][key] < 20
