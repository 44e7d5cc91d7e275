"""MultiViewDataset: parallel view folders, one random augmentation for all views."""

import numpy as np
import pytest
from mmpretrain.registry import DATASETS
from PIL import Image

import nofrost_mm  # noqa: F401
from nofrost_mm.datasets import MultiViewDataset
from tests.datasets.shift_folders import write_images

TRAIN_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=16),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]


def make_views(root):
    """Originals, a 2x nearest-upscaled copy and an inverted copy at the same paths."""
    originals = write_images(root / 'train', wnids=['a', 'b'], per_class=3, size=(24, 20))
    for path in originals:
        rel = path.relative_to(root / 'train')
        img = Image.open(path)
        for view, out in (
            ('big', img.resize((48, 40), Image.NEAREST)),
            ('inverted', Image.fromarray(255 - np.asarray(img))),
        ):
            (root / view / rel).parent.mkdir(parents=True, exist_ok=True)
            out.save(root / view / rel)
    return originals


def build(root, **kwargs):
    return DATASETS.build(
        dict(
            type='MultiViewDataset',
            views=dict(big=str(root / 'big'), inverted=str(root / 'inverted')),
            dataset=dict(
                type='CustomDataset',
                data_root=str(root),
                data_prefix='train',
                pipeline=TRAIN_PIPELINE,
            ),
            **kwargs,
        )
    )


def test_every_view_gets_the_same_crop_and_flip(tmp_path):
    make_views(tmp_path)
    ds = build(tmp_path)
    assert len(ds) == 6 and ds.view_names == ('original', 'big', 'inverted')
    assert ds.metainfo['classes'] == ('a', 'b')
    np.random.seed(0)
    crops = []
    for idx in (0, 4, 0):
        views = ds[idx]
        assert len(views) == 3
        orig, big, inv = (v['inputs'].numpy().astype(int) for v in views)
        assert orig.shape == (3, 16, 16)
        # the upscaled view, resized back to the original's size, is the original
        assert np.array_equal(big, orig)
        # the inverted view stays the inverse after the same crop (1: rounding)
        assert np.abs(inv - (255 - orig)).max() <= 1
        assert [int(v['data_samples'].gt_label) for v in views] == [idx // 3] * 3
        assert views[1]['data_samples'].img_path.endswith(
            f'big/{"a" if idx < 3 else "b"}/img{idx % 3}.png'
        )
        crops.append(orig)
    # the random state moves on after a sample: the same image, another crop
    assert not np.array_equal(crops[0], crops[2])


def test_missing_view_file_is_named(tmp_path):
    make_views(tmp_path)
    (tmp_path / 'inverted' / 'b' / 'img1.png').unlink()
    ds = build(tmp_path)
    ds[3]
    with pytest.raises(
        FileNotFoundError,
        match=r"view 'inverted' of sample 4 \(.*train/b/"
        r'img1.png\) is missing: .*inverted/b/img1.png',
    ):
        ds[4]


def test_bad_configs(tmp_path):
    make_views(tmp_path)
    with pytest.raises(FileNotFoundError, match="view 'big': .* is not a folder"):
        DATASETS.build(
            dict(
                type='MultiViewDataset',
                views=dict(big=str(tmp_path / 'x')),
                dataset=dict(
                    type='CustomDataset',
                    data_root=str(tmp_path),
                    data_prefix='train',
                    pipeline=TRAIN_PIPELINE,
                ),
            )
        )
    with pytest.raises(ValueError, match='must start with one of'):
        DATASETS.build(
            dict(
                type='MultiViewDataset',
                views=dict(big=str(tmp_path / 'big')),
                dataset=dict(
                    type='CustomDataset',
                    data_root=str(tmp_path),
                    data_prefix='train',
                    pipeline=[dict(type='PackInputs')],
                ),
            )
        )
    with pytest.raises(TypeError, match='dict of view name -> root folder'):
        MultiViewDataset(dataset=build(tmp_path).dataset, views=['big'])


def test_views_only(tmp_path):
    make_views(tmp_path)
    ds = build(tmp_path, include_original=False)
    assert ds.view_names == ('big', 'inverted') and len(ds[0]) == 2


def test_independent_augmentation_and_a_view_pipeline_of_its_own(tmp_path):
    """The official NoFrost*'s views: each view cropped on its own, one view
    with its own transforms (here: a fixed 8x8 resize, no crop)."""
    make_views(tmp_path)
    ds = build(
        tmp_path,
        shared_augmentation=False,
        view_pipelines=dict(inverted=[dict(type='Resize', scale=(8, 8)), dict(type='PackInputs')]),
    )
    np.random.seed(0)
    differ = 0
    for idx in range(6):
        orig, big, inv = (v['inputs'].numpy().astype(int) for v in ds[idx])
        assert orig.shape == big.shape == (3, 16, 16) and inv.shape == (3, 8, 8)
        differ += not np.array_equal(big, orig)  # own crops: not the same pixels
    assert differ >= 4
    with pytest.raises(
        KeyError,
        match=r"\['stylized'\] are not views; the views are "
        r"\['original', 'big', 'inverted'\]",
    ):
        build(tmp_path, view_pipelines=dict(stylized=[]))
