"""tools/analysis_tools/distribution_shift_table.py on tiny generated ImageNet, -C, -R,
-A and -Sketch folders: the table's numbers against a direct computation."""

import copy
import importlib.util
import json

import pytest
import torch
from mmpretrain.registry import MODELS

import nofrost_mm  # noqa: F401
from nofrost_mm.datasets.imagenet_class_lists import imagenet_indices, load_wnids
from nofrost_mm.datasets.transforms.corruption_functions import (
    ALEXNET_ERRORS,
    IMAGENET_C_CORRUPTIONS,
)
from tests.conftest import REPO_ROOT
from tests.datasets.shift_folders import TINY_MODEL, TINY_PREPROCESSOR, subset_wnids, write_images

TOOL = REPO_ROOT / 'tools/analysis_tools/distribution_shift_table.py'
# the biased ImageNet class: 234 is in both ImageNet-R (position 56) and ImageNet-A (39)
BIASED = 234
SMALL_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32)),
    dict(type='PackInputs'),
]


def _tool():
    """The command's module, whose main(argv) runs here (a second process would
    spend most of the test starting torch; the command line is the same)."""
    spec = importlib.util.spec_from_file_location('distribution_shift_table', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_model(tmp_path, num_classes=1000):
    """A tiny 1000-class model whose head bias makes class 234 win every image."""
    torch.manual_seed(0)
    model_cfg = copy.deepcopy(TINY_MODEL)
    model_cfg['head']['num_classes'] = num_classes
    model = MODELS.build(dict(model_cfg, data_preprocessor=TINY_PREPROCESSOR))
    if num_classes == 1000:
        model.head.fc.bias.data[BIASED] = 50.0
    ckpt = tmp_path / f'tiny{num_classes}.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    config = tmp_path / f'tiny{num_classes}.py'
    config.write_text(f"""
_base_ = ['{REPO_ROOT}/configs/_base_/default_runtime.py']
model = {dict(model_cfg, data_preprocessor=TINY_PREPROCESSOR)!r}
test_dataloader = dict(batch_size=8, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ImageNet', data_root='data/imagenet', split='val',
                 pipeline={SMALL_PIPELINE!r}))
test_evaluator = dict(type='Accuracy', topk=(1, ))
test_cfg = dict()
""")
    return config, ckpt


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """Tiny folders of every benchmark (written once for this module)."""
    return _write_data(tmp_path_factory.mktemp('benchmarks'))


def _write_data(tmp_path):
    wnids = load_wnids('imagenet')
    roots = {}
    # ImageNet val with meta/val.txt (labels: ImageNet indices), classes 0, 1, 234
    val_wnids = [wnids[0], wnids[1], wnids[BIASED]]
    paths = write_images(tmp_path / 'imagenet' / 'val', wnids=val_wnids, per_class=1)
    (tmp_path / 'imagenet' / 'meta').mkdir()
    (tmp_path / 'imagenet' / 'meta' / 'val.txt').write_text(
        ''.join(f'{p.parent.name}/{p.name} {wnids.index(p.parent.name)}\n' for p in paths)
    )
    roots['imagenet'] = tmp_path / 'imagenet'
    # ImageNet-C: 15 corruptions x 5 severities of classes 0 and 1 (labels 0, 1)
    for c in IMAGENET_C_CORRUPTIONS:
        for s in range(1, 6):
            write_images(
                tmp_path / 'imagenet-c' / c / str(s),
                wnids=wnids[:2],
                per_class=1,
                size=(32, 32),
                ext='.JPEG',
            )
    roots['imagenet-c'] = tmp_path / 'imagenet-c'
    write_images(tmp_path / 'imagenet-r', wnids=subset_wnids('imagenet-r', (0, 56, 199)))
    write_images(
        tmp_path / 'imagenet-a', wnids=subset_wnids('imagenet-a', (0, 39, 199)), ext='.jpg'
    )
    write_images(tmp_path / 'sketch', wnids=[wnids[5], wnids[BIASED], wnids[999]], ext='.JPEG')
    roots.update(
        {
            'imagenet-r': tmp_path / 'imagenet-r',
            'imagenet-a': tmp_path / 'imagenet-a',
            'imagenet-sketch': tmp_path / 'sketch',
        }
    )
    # 32 px pipelines on top of the real dataset configs (theirs resize to 224)
    configs = {}
    for name in ('imagenet-r', 'imagenet-a', 'imagenet-sketch'):
        configs[name] = tmp_path / f'{name}_32px.py'
        configs[name].write_text(
            f"_base_ = ['{REPO_ROOT}/configs/_base_/datasets/{name}_bs64.py']\n"
            f"test_dataloader = dict(batch_size=8, num_workers=0, dataset=dict("
            f"pipeline={SMALL_PIPELINE!r}))\n"
            # without the hook, the tool adds ClassSubsetHook to a class-subset set itself
            + ('custom_hooks = []\n' if name == 'imagenet-a' else '')
        )
    return roots, configs


def test_table_matches_a_direct_computation(tmp_path, data):
    config, ckpt = _write_model(tmp_path)
    roots, configs = data
    out = tmp_path / 'table'
    _tool().main(
        [
            str(a)
            for a in [
                config,
                ckpt,
                config,
                ckpt,
                '--labels',
                'tiny',
                'tiny-again',
                '--out',
                out,
                '--data-root',
                *[f'{k}={v}' for k, v in roots.items()],
                '--dataset-config',
                *[f'{k}={v}' for k, v in configs.items()],
                '--attacks',
                "{'type': 'PGDAttack', 'eps': 8, 'steps': 1, 'num_classes': 200, 'name': 'PGD-1'}",
                '--robust-benchmarks',
                'imagenet-r',
                '--num-samples',
                '2',
                '--batch-size',
                '4',
                '--num-workers',
                '0',
            ]
        ]
    )
    for suffix in ('md', 'json', 'png'):
        assert (out / f'distribution_shift.{suffix}').stat().st_size > 0
    table = json.loads((out / 'distribution_shift.json').read_text())
    assert [m['name'] for m in table['models']] == ['tiny', 'tiny-again']
    res = table['models'][0]['results']
    assert res == table['models'][1]['results']
    # class 234 wins every image: ImageNet 1/3 (one image of 234); on ImageNet-R and
    # -A only when the 200 subset logits are scored (234 is subset label 56 / 39);
    # Sketch 1/3; ImageNet-C (classes 0, 1) 0%, so each corruption error is 1
    r_idx, a_idx = (imagenet_indices(load_wnids(n)) for n in ('imagenet-r', 'imagenet-a'))
    assert r_idx[56] == a_idx[39] == BIASED
    assert res['imagenet'] == {'clean': pytest.approx(100 / 3)}
    assert res['imagenet-r']['clean'] == pytest.approx(100 / 3)
    assert res['imagenet-a'] == {'clean': pytest.approx(100 / 3)}
    assert res['imagenet-sketch'] == {'clean': pytest.approx(100 / 3)}
    mce = 100 * sum(1 / ALEXNET_ERRORS[c] for c in IMAGENET_C_CORRUPTIONS) / 15
    assert res['imagenet-c'] == {'mCE': pytest.approx(mce), 'accuracy': 0.0}
    # robust columns on ImageNet-R (the attack refuses anything but 200 logits)
    assert set(res['imagenet-r']) == {
        'clean',
        'attacked_clean',
        'PGD-1',
        'worst_case',
        'robust_num_samples',
    }
    assert res['imagenet-r']['robust_num_samples'] == 2
    # the seeded 2-sample subset holds one image of label 56; bias 50 survives PGD-1
    assert res['imagenet-r']['attacked_clean'] == res['imagenet-r']['PGD-1'] == 50.0
    md = (out / 'distribution_shift.md').read_text()
    assert '| model | ImageNet (%) | ImageNet-C mCE (lower is better) (%) |' in md
    assert f'| tiny | 33.33 | {mce:.2f} | 0.00 | 33.33 |' in md


def test_subset_benchmark_with_a_200_class_head_fails_before_any_run(tmp_path, data, capsys):
    config, ckpt = _write_model(tmp_path, num_classes=200)
    roots, _ = data
    with pytest.raises(ValueError) as error:
        _tool().main(
            [
                str(a)
                for a in [
                    config,
                    ckpt,
                    '--out',
                    tmp_path / 'table',
                    '--benchmarks',
                    'imagenet-sketch',
                    'imagenet-r',
                    '--data-root',
                    f"imagenet-r={roots['imagenet-r']}",
                    f"imagenet-sketch={roots['imagenet-sketch']}",
                ]
            ]
        )
    assert (
        'ImageNet-R (ImageNetR) has 200 of the 1000 ImageNet-1k classes and is scored '
        'on those 200 logits of a 1000-class model, but model.head.num_classes=200'
    ) in str(error.value)
    assert '[1/' not in capsys.readouterr().out  # no benchmark was run (Sketch is first)


def test_the_configs_own_test_set_keeps_its_root_and_a_missing_one_is_named(tmp_path):
    """Without --data-root imagenet=..., the ImageNet column is the config's test
    set where the config puts it: a missing root names the key, before any run."""
    config, ckpt = _write_model(tmp_path)
    missing = tmp_path / 'no_imagenet_here'
    with pytest.raises(FileNotFoundError) as error:
        _tool().main(
            [
                str(a)
                for a in [
                    config,
                    ckpt,
                    '--out',
                    tmp_path / 'table',
                    '--benchmarks',
                    'imagenet',
                    '--cfg-options',
                    f'test_dataloader.dataset.data_root={missing}',
                ]
            ]
        )
    assert str(error.value) == (
        f'ImageNet: {config}: test_dataloader.dataset.data_root={missing} does not '
        'exist (--data-root imagenet=PATH)'
    )
    assert not (tmp_path / 'table').exists()
