"""multi_view_collate: N samples x V views -> N*V samples; the AT loss of the flat
batch is the mean over views of each view's loss (separate/concat, mixed/pure/TRADES)."""

import copy

import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import FUNCTIONS, DefaultScope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import nofrost_mm  # noqa: F401
from nofrost_mm.datasets import multi_view_collate

N, V = 3, 3


def items(seed=0):
    """N samples of V views: uint8 CHW images, the same label in every view."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(N):
        label = torch.tensor([i % 10])
        out.append(
            [
                dict(
                    inputs=torch.randint(0, 256, (3, 32, 32), generator=g, dtype=torch.uint8),
                    data_samples=DataSample(gt_label=label, metainfo=dict(view=v)),
                )
                for v in range(V)
            ]
        )
    return out


def test_flattens_sample_major_and_is_found_with_and_without_a_scope():
    batch = multi_view_collate(items())
    assert len(batch['inputs']) == N * V
    assert [ds.view for ds in batch['data_samples']] == [0, 1, 2] * N
    assert [int(ds.gt_label) for ds in batch['data_samples']] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    stacked = multi_view_collate(items(), collate='default_collate')
    assert stacked['inputs'].shape == (N * V, 3, 32, 32)
    assert FUNCTIONS.get('multi_view_collate') is multi_view_collate
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        assert FUNCTIONS.get('multi_view_collate') is multi_view_collate
    with pytest.raises(KeyError, match="collate='nope' is not in"):
        multi_view_collate(items(), collate='nope')


def _model(recipe):
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='AdvImageClassifier',
            backbone=dict(
                type='NFResNet_CIFAR',
                depth=18,
                stem_channels=8,
                base_channels=8,
                out_indices=(3,),
                zero_init_last=False,
            ),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=64),
            data_preprocessor=dict(
                type='PGDDataPreprocessor',
                num_classes=10,
                mean=[127.5] * 3,
                std=[64.0] * 3,
                eps=recipe.pop('eps'),
                attack=recipe.pop('attack'),
            ),
            **recipe,
        )
    )
    return model.train()


def _loss(model, data_batch):
    data = model.data_preprocessor(copy.deepcopy(data_batch), training=True)
    loss, _ = model.parse_losses(model(**data, mode='loss'))
    return loss


PGD = dict(type='PGDAttack', steps=2, random_start=False)


@pytest.mark.parametrize(
    'recipe',
    [
        dict(eps=8, attack=PGD, adv_loss_weight=0.5, adv_forward='separate'),
        dict(eps=8, attack=PGD, adv_loss_weight=0.3, adv_forward='concat'),
        dict(eps=8, attack=PGD, adv_loss_weight=1.0),
        # TRADES: its KL attack needs a random start, which cannot draw the same
        # noise for one flat batch and per view: eps 0 checks the loss terms only
        dict(eps=0, attack=dict(type='PGDAttack', steps=0, loss='kl'), adv_loss='trades'),
    ],
    ids=['separate-mix', 'concat-mix0.3', 'pure', 'trades'],
)
def test_flat_batch_loss_is_the_mean_of_the_per_view_losses(recipe):
    model = _model(dict(recipe))
    batch = items()
    flat = _loss(model, multi_view_collate(batch))
    per_view = [_loss(model, pseudo_collate([sample[v] for sample in batch])) for v in range(V)]
    assert len({round(float(v.detach()), 4) for v in per_view}) == V  # the views differ
    torch.testing.assert_close(flat, torch.stack(per_view).mean(), rtol=1e-4, atol=1e-6)
    # and not, e.g., their sum or the first view's loss
    assert not torch.isclose(flat, per_view[0], rtol=1e-3)
