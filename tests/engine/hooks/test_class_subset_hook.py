"""ClassSubsetHook: a 1000-class model scored on ImageNet-R's 200 logits."""

import copy
from types import SimpleNamespace

import mmengine
import pytest
import torch
from mmengine.evaluator import DumpResults
from mmengine.runner import Runner
from mmpretrain.registry import DATASETS, MODELS

import nofrost_mm  # noqa: F401
from nofrost_mm.engine.hooks import ClassSubsetHook
from tests.datasets.shift_folders import TINY_MODEL, TINY_PREPROCESSOR, subset_wnids, write_images

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]


def _runner(
    tmp_path,
    data_root,
    num_classes=1000,
    test_cfg=None,
    evaluator=None,
    runner_cls=Runner,
    custom_hooks=(dict(type='ClassSubsetHook'),),
):
    model = copy.deepcopy(TINY_MODEL)
    model['head']['num_classes'] = num_classes
    model['data_preprocessor'] = TINY_PREPROCESSOR
    return runner_cls(
        model=model,
        work_dir=str(tmp_path / 'work'),
        default_scope='mmpretrain',
        experiment_name=f'class_subset_{tmp_path.name}',
        test_dataloader=dict(
            batch_size=4,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(type='ImageNetR', data_root=str(data_root), pipeline=PIPELINE),
        ),
        test_evaluator=evaluator or dict(type='Accuracy', topk=(1,)),
        test_cfg=test_cfg or dict(),
        custom_hooks=list(custom_hooks),
        log_level='WARNING',
    )


@pytest.fixture
def imagenet_r(tmp_path):
    write_images(
        tmp_path / 'imagenet-r', wnids=subset_wnids('imagenet-r'), per_class=2, size=(32, 32)
    )
    return tmp_path / 'imagenet-r'


def test_predictions_are_the_softmax_of_the_subset_logits(tmp_path, imagenet_r):
    torch.manual_seed(0)
    runner = _runner(tmp_path, imagenet_r)
    indices = runner.test_dataloader.dataset.metainfo['class_subset']
    # a large bias on ImageNet class indices[57] (= 234): its subset label 57 wins
    # every sample only when the model is scored on the subset's logits
    runner.model.head.fc.bias.data[indices[57]] = 50.0
    runner.test_evaluator.metrics.append(DumpResults(str(tmp_path / 'pred.pkl')))
    metrics = runner.test()
    assert metrics['accuracy/top1'] == pytest.approx(100 * 2 / 6)  # the 2 images of label 57

    preds = mmengine.load(tmp_path / 'pred.pkl')
    dataset = runner.test_dataloader.dataset
    batch = runner.model.data_preprocessor(
        dict(
            inputs=[dataset[i]['inputs'] for i in range(len(dataset))],
            data_samples=[dataset[i]['data_samples'] for i in range(len(dataset))],
        )
    )
    with torch.no_grad():
        full = runner.model(batch['inputs'], mode='tensor')  # hook removed after test
    assert full.shape == (6, 1000)
    expected = full[:, list(indices)].softmax(1)
    got = torch.stack([p['pred_score'] for p in preds])
    assert got.shape == (6, 200)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert [int(p['gt_label']) for p in preds] == [0, 0, 57, 57, 199, 199]
    assert all(int(p['pred_label']) == 57 for p in preds)


def test_attacks_see_the_subset_logits(tmp_path, imagenet_r):
    torch.manual_seed(0)
    # PGDAttack(num_classes=200) raises if the model gives it 1000 logits
    runner = _runner(
        tmp_path,
        imagenet_r,
        evaluator=dict(type='RobustAccuracy'),
        test_cfg=dict(
            type='RobustTestLoop',
            attacks=[dict(type='PGDAttack', eps=8, steps=2, num_classes=200, name='PGD-2')],
        ),
    )
    runner.model.head.fc.bias.data[runner.test_dataloader.dataset.metainfo['class_subset'][57]] = (
        50.0
    )
    metrics = runner.test()
    assert metrics['robust/clean'] == pytest.approx(100 * 2 / 6)
    assert 'robust/PGD-2' in metrics


def test_head_of_another_width_is_refused_before_any_batch(tmp_path, imagenet_r):
    runner = _runner(tmp_path, imagenet_r, num_classes=200)
    with pytest.raises(
        ValueError,
        match='ImageNetR has 200 of the 1000 ImageNet-1k '
        r'classes .* but model.head.num_classes=200',
    ):
        runner.test()


def test_datasets_without_a_subset_are_untouched(tmp_path):
    write_images(tmp_path, wnids=['n01440764'], per_class=1)
    sketch = DATASETS.build(dict(type='ImageNetSketch', data_root=str(tmp_path)))
    model = MODELS.build(dict(TINY_MODEL, data_preprocessor=TINY_PREPROCESSOR))
    runner = SimpleNamespace(model=model, test_dataloader=SimpleNamespace(dataset=sketch))
    hook = ClassSubsetHook()
    hook.before_test(runner)
    assert model(torch.zeros(1, 3, 32, 32), mode='tensor').shape == (1, 1000)
    r = DATASETS.build(
        dict(
            type='WnidFolderDataset', data_root=str(tmp_path), class_list=['n01440764', 'n01443537']
        )
    )
    runner.test_dataloader.dataset = r
    hook.before_test(runner)
    logits = model(torch.zeros(1, 3, 32, 32), mode='tensor')
    assert logits.shape == (1, 2)
    hook.after_test(runner)
    full = model(torch.zeros(1, 3, 32, 32), mode='tensor')
    assert full.shape == (1, 1000)
    torch.testing.assert_close(logits, full[:, :2])


def test_a_leaf_config_with_its_own_custom_hooks_keeps_the_hook(tmp_path):
    from mmengine.config import Config

    from tests.conftest import REPO_ROOT

    leaf = tmp_path / 'leaf.py'
    leaf.write_text(
        f"_base_ = ['{REPO_ROOT}/configs/_base_/default_runtime.py', "
        f"'{REPO_ROOT}/configs/_base_/datasets/imagenet-r_bs64.py']\n"
        "custom_hooks = [dict(type='EMAHook')]\n"
    )
    cfg = Config.fromfile(str(leaf))
    # the dataset base's custom hook is dropped, default_runtime.py's kept
    assert [h['type'] for h in cfg.custom_hooks] == ['EMAHook']
    assert cfg.default_hooks.class_subset == dict(type='ClassSubsetHook')


def test_a_hook_named_twice_restricts_the_logits_once(tmp_path, imagenet_r):
    # default_runtime.py's default hook and a custom one: the second would
    # otherwise index the 200 logits with ImageNet-1k indices
    twice = _runner(tmp_path, imagenet_r, custom_hooks=(dict(type='ClassSubsetHook'),) * 2)
    assert sum(isinstance(h, ClassSubsetHook) for h in twice.hooks) == 2
    torch.manual_seed(0)
    twice.model.head.fc.bias.data[twice.test_dataloader.dataset.metainfo['class_subset'][57]] = 50.0
    assert twice.test()['accuracy/top1'] == pytest.approx(100 * 2 / 6)
