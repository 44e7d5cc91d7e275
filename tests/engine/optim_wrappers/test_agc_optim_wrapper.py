import pytest
import torch
import torch.nn as nn
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from timm.utils.agc import adaptive_clip_grad

import nofrost_mm  # noqa: F401
from nofrost_mm.engine.optim_wrappers import AGCOptimWrapper, adaptive_clip_grad_
from tests.tools.user_path_runs import run_main


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
        self.head = nn.Module()
        self.head.fc = nn.Linear(4 * 16, 2)

    def forward(self, x):
        return self.head.fc(self.backbone(x))


def _wrapper(model, **agc):
    init_default_scope('mmpretrain')
    return build_optim_wrapper(
        model,
        dict(
            type='AGCOptimWrapper',
            optimizer=dict(type='SGD', lr=0.1),
            clip_grad=dict(type='agc', **agc),
        ),
    )


def _backward(model, scale=100.0):
    torch.manual_seed(1)
    model(torch.randn(2, 3, 6, 6)).sum().mul(scale).backward()
    return [p.grad.clone() for p in model.parameters()]


def test_matches_timm_and_excludes_classifier():
    torch.manual_seed(0)
    model = Net()
    wrapper = _wrapper(model, clip_factor=0.01, eps=1e-3)  # head.fc default
    assert isinstance(wrapper, AGCOptimWrapper)
    wrapper.initialize_count_status(model, 0, 10)  # the runner does this
    raw = _backward(model)
    wrapper._clip_grad()
    clipped = [p.grad.clone() for p in model.parameters()]
    for p, g in zip(model.parameters(), raw):
        p.grad.copy_(g)
    backbone_params = list(model.backbone.parameters())
    adaptive_clip_grad(backbone_params, clip_factor=0.01, eps=1e-3)
    for got, p in zip(clipped, model.parameters()):
        assert torch.equal(got, p.grad)
    assert not torch.equal(clipped[0], raw[0])  # conv weight was clipped
    assert torch.equal(clipped[-1], raw[-1])  # head.fc left alone
    ratio = wrapper.message_hub.get_scalar('train/agc_clip_ratio').current()
    assert 0 < ratio <= 1


def test_small_gradients_untouched():
    model = Net()
    grads = [torch.full_like(p, 1e-9) for p in model.parameters()]
    for p, g in zip(model.parameters(), grads):
        p.grad = g.clone()
    assert adaptive_clip_grad_(list(model.parameters())) == 0.0
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))


def test_step_clips_then_updates():
    model = Net()
    wrapper = _wrapper(model, exclude=())
    before = model.backbone[0].weight.detach().clone()
    _backward(model, scale=1e6)
    wrapper.step()
    # the update of each unit is at most lr * clip_factor * ||W_unit||
    delta = (model.backbone[0].weight - before).flatten(1).norm(dim=1)
    bound = 0.1 * 0.01 * before.flatten(1).norm(dim=1)
    assert torch.all(delta <= bound * (1 + 1e-4))


def test_other_clip_types_pass_through():
    model = Net()
    init_default_scope('mmpretrain')
    wrapper = build_optim_wrapper(
        model,
        dict(
            type='AGCOptimWrapper', optimizer=dict(type='SGD', lr=0.1), clip_grad=dict(max_norm=1.0)
        ),
    )
    _backward(model)
    wrapper._clip_grad()
    total = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
    assert total <= 1.0 + 1e-5


def test_bad_options_are_clear():
    model = Net()
    with pytest.raises(TypeError, match=r"unknown keys \['factor'\]"):
        _wrapper(model, factor=0.01)
    with pytest.raises(ValueError, match='must be > 0'):
        _wrapper(model, clip_factor=0)
    wrapper = _wrapper(model, exclude=('head.classifier',))
    with pytest.raises(ValueError, match=r"\['head.classifier'\] match no"):
        wrapper.initialize_count_status(model, 0, 10)
    wrapper = _wrapper(model)
    _backward(model)
    with pytest.raises(RuntimeError, match='set_agc_model'):
        wrapper.step()


def test_normfree_demo_config_trains_with_agc(tmp_path, monkeypatch):
    """The example config: BN demo made normalizer-free by one key + AGC.

    tools/train.py's main in this process (a process would spend most of the
    test importing torch); the log file holds what the console shows."""
    run_main(
        monkeypatch,
        'tools/train.py',
        [
            'configs/demo/resnet18-w16-normfree_1xb64_digits.py',
            '--work-dir',
            tmp_path,
            '--cfg-options',
            'train_dataloader.dataset.indices=128',
            'val_dataloader.dataset.indices=60',
            'train_cfg.max_epochs=1',
            'train_cfg.val_interval=1',
            'default_hooks.logger.interval=1',
        ],
    )
    (log,) = tmp_path.glob('*/*.log')
    log = log.read_text()
    assert 'agc_clip_ratio' in log
    assert 'loss: nan' not in log
    assert 'accuracy/top1' in log
    ckpt = torch.load(tmp_path / 'epoch_1.pth', weights_only=True)
    keys = ckpt['state_dict']
    assert 'backbone.backbone.layer1.0.conv1.gain' in keys
    assert not any('bn' in k or 'running_mean' in k for k in keys)


def test_amp_variant_unscales_then_clips(monkeypatch):
    # AmpOptimWrapper refuses machines without an accelerator; its scaler
    # disables itself on CPU, which is enough to check the composition
    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp_module

    from nofrost_mm.engine.optim_wrappers import AmpAGCOptimWrapper

    monkeypatch.setattr(amp_module, 'is_cuda_available', lambda: True)
    model = nn.Linear(4, 3)
    wrapper = AmpAGCOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        clip_grad=dict(type='agc', exclude=()),
    )
    before = model.weight.detach().clone()
    wrapper.update_params(model(torch.randn(2, 4)).sum() * 1e4)
    step = (model.weight - before).norm(dim=1) / before.norm(dim=1)
    assert torch.allclose(step, torch.full((3,), 0.1 * 0.01), rtol=1e-3)
