"""ImageNetR / ImageNetA / ImageNetSketch over tiny folders in the released layouts."""

import pytest
from mmengine.config import Config
from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
from mmpretrain.registry import DATASETS

import nofrost_mm  # noqa: F401
from nofrost_mm.datasets.imagenet_class_lists import imagenet_indices, load_wnids
from tests.conftest import REPO_ROOT
from tests.datasets.shift_folders import subset_wnids, write_images

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]


@pytest.mark.parametrize(
    'dataset, list_name', [('ImageNetR', 'imagenet-r'), ('ImageNetA', 'imagenet-a')]
)
def test_subset_datasets_label_by_the_200_class_list(tmp_path, dataset, list_name):
    wnids = subset_wnids(list_name)
    write_images(tmp_path, wnids=wnids, per_class=2, ext='.jpg')
    (tmp_path / 'README.txt').write_text('files next to the class folders are ignored')
    ds = DATASETS.build(dict(type=dataset, data_root=str(tmp_path), pipeline=PIPELINE))
    assert len(ds) == 6
    # labels are positions in the full 200-class list, not among the 3 folders
    assert [ds.get_data_info(i)['gt_label'] for i in range(6)] == [0, 0, 57, 57, 199, 199]
    meta = ds.metainfo
    full = load_wnids(list_name)
    assert meta['wnids'] == full and len(meta['classes']) == 200
    assert meta['class_subset'] == imagenet_indices(full)
    assert meta['classes'][57] == IMAGENET_CATEGORIES[meta['class_subset'][57]]
    sample = ds[2]
    assert int(sample['data_samples'].gt_label) == 57
    assert sample['inputs'].shape == (3, 32, 40)


def test_sketch_uses_the_imagenet_indices(tmp_path):
    wnids = ['n01440764', 'n09835506', 'n15075141']
    write_images(tmp_path, wnids=wnids, per_class=1, ext='.JPEG')
    ds = DATASETS.build(dict(type='ImageNetSketch', data_root=str(tmp_path), pipeline=PIPELINE))
    assert [ds.get_data_info(i)['gt_label'] for i in range(3)] == [0, 981, 999]
    assert ds.metainfo['classes'][981].startswith('ballplayer')
    assert 'class_subset' not in ds.metainfo
    assert ds.metainfo['classes'] == tuple(IMAGENET_CATEGORIES)


def test_folder_outside_the_class_list_is_named(tmp_path):
    # n01440764 (tench) is an ImageNet class, but not one of ImageNet-R's 200
    write_images(tmp_path, wnids=['n01443537', 'n01440764', 'cartoons'], per_class=1)
    with pytest.raises(
        ValueError,
        match="class folder 'cartoons' in .* is not one of "
        r'the 200 classes of .*imagenet_r_wnids.txt \(2 unknown',
    ):
        DATASETS.build(dict(type='ImageNetR', data_root=str(tmp_path), pipeline=PIPELINE))


def test_missing_and_empty_roots(tmp_path):
    with pytest.raises(FileNotFoundError, match='is not a folder'):
        DATASETS.build(dict(type='ImageNetA', data_root=str(tmp_path / 'nope')))
    (tmp_path / 'n01498041').mkdir()
    with pytest.raises(RuntimeError, match='no image'):
        DATASETS.build(dict(type='ImageNetA', data_root=str(tmp_path)))


def test_custom_class_list_must_be_sorted_imagenet_ids(tmp_path):
    write_images(tmp_path, wnids=['n01443537'], per_class=1)
    with pytest.raises(ValueError, match='sorted, unique'):
        DATASETS.build(
            dict(
                type='WnidFolderDataset',
                data_root=str(tmp_path),
                class_list=['n01484850', 'n01443537'],
            )
        )
    ds = DATASETS.build(
        dict(
            type='WnidFolderDataset', data_root=str(tmp_path), class_list=['n01443537', 'n01484850']
        )
    )
    assert ds.metainfo['class_subset'] == (1, 2)


@pytest.mark.parametrize(
    'name, dataset',
    [
        ('imagenet-r', 'ImageNetR'),
        ('imagenet-a', 'ImageNetA'),
        ('imagenet-sketch', 'ImageNetSketch'),
    ],
)
def test_dataset_base_configs(name, dataset):
    cfg = Config.fromfile(REPO_ROOT / f'configs/_base_/datasets/{name}_bs64.py')
    assert cfg.test_dataloader.dataset.type == dataset
    hooks = [h['type'] for h in cfg.get('custom_hooks', [])]
    assert hooks == ([] if dataset == 'ImageNetSketch' else ['ClassSubsetHook'])
