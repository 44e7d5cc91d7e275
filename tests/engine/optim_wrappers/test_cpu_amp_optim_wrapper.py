"""CPUAmpOptimWrapper: ``tools/train.py --amp`` on a machine without CUDA (bf16 autocast)."""

import pytest
import torch
import torch.nn as nn

from nofrost_mm.engine.optim_wrappers import (
    CPUAmpAGCOptimWrapper,
    CPUAmpOptimWrapper,
    amp_optim_wrapper_type,
)
from tests.conftest import run_tool


def test_its_context_is_bf16_autocast_and_it_steps():
    model = nn.Linear(4, 3)
    wrapper = CPUAmpOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1), loss_scale='dynamic'
    )
    before = model.weight.detach().clone()
    assert not torch.is_autocast_enabled('cpu')
    with wrapper.optim_context(model):
        assert torch.is_autocast_enabled('cpu')
        assert torch.get_autocast_dtype('cpu') == torch.bfloat16
        out = model(torch.randn(2, 4))
        assert out.dtype == torch.bfloat16
        loss = out.float().sum()
    wrapper.update_params(loss)
    assert not torch.is_autocast_enabled('cpu')
    assert not torch.equal(model.weight, before) and torch.isfinite(model.weight).all()
    with pytest.raises(ValueError, match='optim_wrapper.dtype'):
        CPUAmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), dtype='float16')
    agc = CPUAmpAGCOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        clip_grad=dict(type='agc', exclude=()),
    )
    assert agc.cast_dtype == torch.bfloat16 and agc.clip_grad_kwargs['type'] == 'agc'


@pytest.mark.parametrize(
    'given,cuda,expected',
    [
        ('OptimWrapper', True, 'AmpOptimWrapper'),
        ('OptimWrapper', False, 'CPUAmpOptimWrapper'),
        ('AGCOptimWrapper', True, 'AmpAGCOptimWrapper'),
        ('AGCOptimWrapper', False, 'CPUAmpAGCOptimWrapper'),
        (None, False, 'CPUAmpOptimWrapper'),
    ],
)
def test_amp_picks_the_twin_for_the_machine(given, cuda, expected):
    assert amp_optim_wrapper_type(given, cuda) == expected


def test_train_tool_amp_on_a_cpu_trains_pgd_at_and_logs_the_attack_precision(tmp_path):
    proc = run_tool(
        [
            'tools/train.py',
            'configs/demo/resnet18-w16_1xb64_digits_pgdat.py',
            '--amp',
            '--work-dir',
            tmp_path,
            '--cfg-options',
            'train_dataloader.dataset.indices=128',
            'train_cfg.max_epochs=1',
            'val_dataloader.dataset.indices=40',
            'data_preprocessor.attack.steps=2',
            'custom_hooks.0.val_attack.steps=2',
            'default_hooks.logger.interval=1',
        ],
        env=dict(CUDA_VISIBLE_DEVICES=''),
    )
    log = proc.stdout + proc.stderr
    assert "type='CPUAmpOptimWrapper'" in log
    assert 'the training attack PGDAttack runs in bf16 (polish fp32) autocast' in log
    assert log.count('the training attack PGDAttack runs in') == 1  # once, not per iteration
    assert 'loss: nan' not in log and 'robust_accuracy/top1' in log
    assert (tmp_path / 'epoch_1.pth').is_file()
