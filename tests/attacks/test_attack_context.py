"""attack_context: eval/train mode, frozen parameters and BN statistics, exact restore."""

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.model import MMDistributedDataParallel

from nofrost_mm.attacks import attack_context, model_state
from tests.conftest import free_port


def _net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.Dropout(0.5),
        nn.InstanceNorm2d(4, track_running_stats=True),
        nn.Flatten(),
        nn.LazyLinear(2),
    )


def _snapshot(model):
    return (
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        {k: v.clone() for k, v in model.state_dict().items()},
    )


def _mixed_state(model):
    model(torch.rand(2, 3, 8, 8))  # materialise the lazy layer
    model.train()
    model[2].eval()  # a submodule in another mode
    model[0].bias.requires_grad_(False)  # a frozen parameter
    return model


@pytest.mark.parametrize('train_mode', [False, True])
def test_sets_mode_freezes_and_restores(train_mode):
    model = _mixed_state(_net())
    before = _snapshot(model)
    with attack_context(model, train_mode=train_mode) as net:
        assert net is model
        assert all(m.training == train_mode for m in model.modules())
        assert not any(p.requires_grad for p in model.parameters())
        x = torch.rand(4, 3, 8, 8, requires_grad=True)
        (grad,) = torch.autograd.grad(model(x).sum(), x)  # input gradients still flow
        assert grad.abs().sum() > 0
    after = _snapshot(model)
    assert after[0] == before[0] and after[1] == before[1]
    for key, value in before[2].items():  # BN / IN running statistics untouched
        assert torch.equal(after[2][key], value), key


def test_restores_when_the_body_raises():
    model = _mixed_state(_net())
    before = _snapshot(model)
    with pytest.raises(RuntimeError, match='boom'):
        with attack_context(model, train_mode=True):
            model(torch.rand(4, 3, 8, 8))
            raise RuntimeError('boom')
    after = _snapshot(model)
    assert after[0] == before[0] and after[1] == before[1]
    for key, value in before[2].items():
        assert torch.equal(after[2][key], value), key


def test_train_mode_uses_batch_statistics():
    model = _mixed_state(_net())
    x = torch.rand(4, 3, 8, 8) * 5
    model.eval()
    with torch.no_grad():
        eval_out = model(x)
    with torch.no_grad(), attack_context(model, train_mode=True):
        model[2].eval()  # compare BN only: no dropout noise
        train_out = model(x)
    assert not torch.allclose(eval_out, train_out)


def test_unwraps_ddp():
    port = free_port()
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=0, world_size=1)
    try:
        model = _net()
        model(torch.rand(2, 3, 8, 8))
        wrapped = MMDistributedDataParallel(model)
        with attack_context(wrapped) as net:
            assert net is model and not model.training
        assert model.training
        assert all(p.requires_grad for p in model.parameters())
    finally:
        dist.destroy_process_group()


def test_model_state_restores_what_a_callee_changed():
    """train_mode=None keeps the modes; whatever the body switches comes back
    (torchattacks calls model.eval() and model.train())."""
    model = _mixed_state(_net())
    before = _snapshot(model)
    with model_state(model) as net:
        assert net is model and [m.training for m in model.modules()] == before[0]
        model.eval()
        model[0].weight.requires_grad_(False)
    after = _snapshot(model)
    assert after[0] == before[0] and after[1] == before[1]


def test_model_state_unchanged_statistics_survive_a_later_backward():
    """running_stats='unchanged': train-mode passes whose graph is used after
    the context leave the running statistics bit-identical."""
    model = _mixed_state(_net())
    before = _snapshot(model)
    x = torch.rand(4, 3, 8, 8) * 5
    with model_state(model, train_mode=True, running_stats='unchanged'):
        out = model(x)
        assert all(m.training for m in model.modules())
    out.sum().backward()  # BN's backward reads the batch statistics it saved
    after = _snapshot(model)
    assert after[0] == before[0]
    assert model[1].momentum == 0.1
    for key, value in before[2].items():
        assert torch.equal(after[2][key], value), key
    with model_state(model, train_mode=True):  # None: the statistics move
        model(x)
    assert not torch.equal(model[1].running_mean, before[2]['1.running_mean'])


def test_model_state_names_the_allowed_running_stats():
    with pytest.raises(ValueError, match="running_stats must be one of.*'restore'"):
        with model_state(_net(), running_stats='frozen'):
            pass
