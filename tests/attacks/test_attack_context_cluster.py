"""attack_context on a cluster: SyncBatchNorm attacks without collectives, FSDP refused."""

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn

from nofrost_mm.attacks import attack_context


def _pair():
    torch.manual_seed(0)
    sync = nn.Sequential(nn.Conv2d(3, 4, 3), nn.SyncBatchNorm(4), nn.ReLU())
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    with torch.no_grad():
        sync[1].running_mean.uniform_(-1, 1)
        sync[1].weight.uniform_(0.5, 1.5)
    plain.load_state_dict(sync.state_dict())
    return sync, plain


@pytest.fixture
def one_rank_group(tmp_path):
    """A gloo group of one process: SyncBatchNorm in train mode then syncs."""
    dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path / "store"}', rank=0, world_size=1
    )
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_train_mode_attack_uses_this_process_batch_statistics(one_rank_group):
    sync, plain = _pair()
    x = torch.rand(5, 3, 6, 6)
    sync.train()
    # the negative control: outside the attack a train-mode pass syncs
    # (SyncBatchNorm refuses CPU tensors when it would gather statistics)
    with pytest.raises(ValueError, match='SyncBatchNorm expected input tensor'):
        sync(x)
    before = {k: v.clone() for k, v in sync.state_dict().items()}
    with attack_context(sync, train_mode=True) as net:
        out = net(x)
    assert torch.allclose(out, plain.train()(x), atol=1e-6)
    # running statistics untouched, the module's own forward back
    assert all(torch.equal(v, before[k]) for k, v in sync.state_dict().items())
    assert 'forward' not in vars(sync[1]) and sync.training
    with pytest.raises(ValueError, match='SyncBatchNorm expected input tensor'):
        sync(x)


def test_eval_mode_attack_uses_the_running_statistics(one_rank_group):
    sync, plain = _pair()
    x = torch.rand(5, 3, 6, 6)
    with attack_context(sync) as net:
        assert torch.allclose(net(x), plain.eval()(x), atol=1e-6)


def test_fsdp_is_refused_with_what_to_use():
    from torch.distributed import fsdp

    class Sharded(fsdp.FullyShardedDataParallel):
        def __init__(self, module):  # no process group needed to be seen
            nn.Module.__init__(self)
            self.inner = module

    model = nn.Sequential(nn.Linear(2, 2), Sharded(nn.Linear(2, 2)))
    with pytest.raises(ValueError, match='sharded by FSDP.*MMDistributedDataParallel'):
        with attack_context(model):
            pass
