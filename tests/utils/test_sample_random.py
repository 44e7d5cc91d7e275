import pytest
import torch

from nofrost_mm.utils import (
    random_keys,
    sample_bits,
    sample_keys,
    sample_normal,
    sample_randint,
    sample_uniform,
)


def test_a_samples_numbers_do_not_depend_on_its_batch():
    every = sample_uniform(sample_keys(3, torch.arange(40)), (2, 5, 5), stream=11)
    some = sample_uniform(sample_keys(3, torch.tensor([31, 0, 7])), (2, 5, 5), stream=11)
    assert torch.equal(some, every[[31, 0, 7]])


def test_seeds_streams_and_samples_give_different_numbers():
    keys = sample_keys(0, torch.arange(64))
    a = sample_uniform(keys, (256,), stream=1)
    assert not torch.equal(a, sample_uniform(keys, (256,), stream=2))
    assert not torch.equal(a, sample_uniform(sample_keys(1, torch.arange(64)), (256,), 1))
    assert not torch.equal(a[0], a[1])
    # large streams (hashes of names) fold in rather than overflow
    assert not torch.equal(sample_uniform(keys, (8,), 2**40 + 1), sample_uniform(keys, (8,), 1))


def test_the_numbers_have_the_stated_distributions():
    keys = sample_keys(0, torch.arange(500))
    u = sample_uniform(keys, (400,))
    assert 0 <= u.min() and u.max() < 1
    assert abs(u.mean().item() - 0.5) < 0.005 and abs(u.var().item() - 1 / 12) < 0.002
    n = sample_normal(keys, (400,), stream=3)
    assert abs(n.mean().item()) < 0.01 and abs(n.std().item() - 1) < 0.01
    r = sample_randint(keys, 7, (400,), stream=4)
    counts = torch.bincount(r.flatten(), minlength=7).float()
    assert r.min() == 0 and r.max() == 6
    assert (counts / counts.mean() - 1).abs().max() < 0.03
    # per-sample bounds broadcast
    bounded = sample_randint(keys[:3], torch.tensor([[1], [2], [3]]), (50,))
    assert bounded[0].max() == 0 and bounded[1].max() <= 1 and bounded[2].max() <= 2


def test_the_numbers_are_fixed_integers_on_every_machine():
    # pure integer arithmetic: these exact values hold on any CPU, thread count or device
    bits = sample_bits(sample_keys(0, torch.tensor([0, 1])), (2,))
    assert bits.tolist() == [[1743670153, 3624079449], [2537395767, 1786247988]]
    assert torch.equal(
        sample_uniform(sample_keys(0, torch.tensor([0, 1])), (2,)), (bits >> 8).float() / 2**24
    )


def test_bad_keys_are_refused():
    with pytest.raises(ValueError, match='indices must be >= 0'):
        sample_keys(0, torch.tensor([-1]))
    with pytest.raises(ValueError, match='>= 0'):
        sample_keys(-1, torch.tensor([1]))


def test_random_keys_follow_torchs_seed():
    torch.manual_seed(5)
    a = random_keys(4)
    torch.manual_seed(5)
    assert torch.equal(a, random_keys(4)) and a.dtype == torch.int64
