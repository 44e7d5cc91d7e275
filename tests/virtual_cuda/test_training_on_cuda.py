"""Every adversarial-training recipe, AGC and the divergence guard on the
virtual CUDA device: no device mix, every gradient on the device."""

import pytest
import torch
from mmengine.optim import OptimWrapper

from .tiny import NF_BACKBONE, at_model, batch
from .vcuda import VDEV, is_vcuda, virtual_cuda

RECIPES = {
    'PGD mixed 0.5': dict(),
    'PGD concat': dict(adv_forward='concat'),
    'PGD pure': dict(adv_loss_weight=1.0),
    'TRADES': dict(
        adv_loss='trades',
        attack=dict(type='PGDAttack', steps=2, loss='kl', random_start='normal'),
    ),
    'AWP': dict(awp_gamma=0.01),
    'GradAlign + FGSM': dict(
        grad_align_lambda=0.2, attack=dict(type='FGSMRS', random_start=False, step_ratio=1.0)
    ),
    'FGSM-RS': dict(attack=dict(type='FGSMRS')),
    'N-FGSM': dict(attack=dict(type='NFGSM')),
    'train-mode attack': dict(prekw=dict(attack_model_mode='train')),
    'Mixup soft labels': dict(
        prekw=dict(batch_augments=dict(augments=[dict(type='Mixup', alpha=1.0)]))
    ),
    'NF-ResNet': dict(backbone=NF_BACKBONE),
    'channels-last': dict(channels_last=True),
}


def _train(model, steps: int = 1):
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    for i in range(steps):
        model.train_step(batch(idx0=i), wrapper)
    # the step ran (zero_grad has dropped the gradients): parameters and
    # momentum buffers stayed on the device
    state = [s['momentum_buffer'] for s in wrapper.optimizer.state.values()]
    assert state and all(is_vcuda(t) and t.device == VDEV for t in state)
    assert all(is_vcuda(p) for p in model.parameters())


@pytest.mark.parametrize('recipe', sorted(RECIPES))
def test_recipe_trains_on_cuda(recipe):
    kwargs = dict(RECIPES[recipe])
    channels_last = kwargs.pop('channels_last', False)
    with virtual_cuda() as seen:
        model = at_model(**kwargs)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        _train(model)
    assert not seen.mismatches


def test_agc_on_cuda_reads_nothing_per_parameter():
    from nofrost_mm.engine.optim_wrappers import adaptive_clip_grad_

    with virtual_cuda() as seen:
        model = at_model(backbone=NF_BACKBONE)
        params = list(model.parameters())
        for p in params:
            p.grad = torch.ones_like(p)
        start = len(seen.syncs)
        ratio = adaptive_clip_grad_(params, 0.01, 1e-3)
        assert seen.own_syncs(start) == []
        assert is_vcuda(ratio) and 0 < float(ratio) <= 1
    assert len(params) > 50 and not seen.mismatches


def test_divergence_guard_checks_gradients_on_cuda():
    from nofrost_mm.engine.hooks import DivergenceGuardHook

    with virtual_cuda() as seen:
        model = at_model()
        for p in model.parameters():
            p.grad = torch.ones_like(p)
        start = len(seen.syncs)
        DivergenceGuardHook()._check_grads(torch.optim.SGD(model.parameters(), lr=0.1), (), {})
    assert not seen.mismatches
    assert len(seen.own_syncs(start)) <= 1  # one read for all parameters
