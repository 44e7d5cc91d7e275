"""CorruptedDataset (on the fly), and the released ImageNet-C / CIFAR-10-C layouts."""

import numpy as np
import pytest
from mmpretrain.registry import DATASETS
from PIL import Image

import nofrost_mm  # noqa: F401

PACK = dict(type='PackInputs', meta_keys=('sample_idx', 'corruption', 'severity'))


def test_corrupted_dataset_sweeps_corruptions_and_severities():
    ds = DATASETS.build(
        dict(
            type='CorruptedDataset',
            corruptions=['fog', 'snow'],
            severities=[1, 5],
            dataset=dict(
                type='SklearnDigits',
                split='test',
                indices=3,
                pipeline=[dict(type='ImageCorruption'), PACK],
            ),
        )
    )
    assert len(ds) == 12
    assert ds.metainfo['corruptions'] == ('fog', 'snow')
    info = ds.get_data_info(7)  # snow (group 2 = snow/1), sample 1
    assert (info['corruption'], info['severity'], info['sample_idx']) == ('snow', 1, 7)
    sample = ds[11]
    assert sample['data_samples'].corruption == 'snow'
    assert sample['data_samples'].severity == 5
    assert sample['inputs'].shape == (3, 32, 32)


@pytest.mark.parametrize(
    'kwargs, match',
    [
        (dict(corruptions='imagenet-x'), "give a list of corruption names or one of"),
        (dict(severities=[0]), r'severities=0 must be an int in 1..5'),
        (dict(pipeline=[PACK]), 'needs dict\\(type=.ImageCorruption.\\)'),
        (
            dict(pipeline=[dict(type='ImageCorruption'), dict(type='PackInputs')]),
            "PackInputs must keep the corruption and severity",
        ),
    ],
)
def test_corrupted_dataset_errors(kwargs, match):
    pipeline = kwargs.pop('pipeline', [dict(type='ImageCorruption'), PACK])
    with pytest.raises(ValueError, match=match):
        DATASETS.build(
            dict(
                type='CorruptedDataset',
                dataset=dict(type='SklearnDigits', split='test', pipeline=pipeline),
                **kwargs,
            )
        )


def test_cifar10c_layout(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 2)  # 5 severities x 2 images
    np.save(tmp_path / 'labels.npy', labels)
    for c in ('fog', 'snow'):
        np.save(tmp_path / f'{c}.npy', rng.integers(0, 256, (10, 32, 32, 3), np.uint8))
    ds = DATASETS.build(
        dict(
            type='CIFAR10C',
            data_root=str(tmp_path),
            corruptions=['fog', 'snow'],
            severities=[2, 5],
            pipeline=[PACK],
        )
    )
    assert len(ds) == 8
    infos = [ds.get_data_info(i) for i in range(8)]
    assert [(d['corruption'], d['severity'], d['gt_label']) for d in infos[:4]] == [
        ('fog', 2, 1),
        ('fog', 2, 1),
        ('fog', 5, 4),
        ('fog', 5, 4),
    ]
    fog = np.load(tmp_path / 'fog.npy')
    assert np.array_equal(ds[2]['inputs'].permute(1, 2, 0).numpy(), fog[8])
    with pytest.raises(FileNotFoundError, match='frost.npy is missing'):
        DATASETS.build(
            dict(type='CIFAR10C', data_root=str(tmp_path), corruptions=['frost'], pipeline=[PACK])
        )


def test_imagenetc_layout(tmp_path):
    for c in ('fog', 'snow'):
        for s in (1, 3):
            for wnid in ('n01', 'n02'):
                folder = tmp_path / c / str(s) / wnid
                folder.mkdir(parents=True)
                Image.new('RGB', (8, 8)).save(folder / f'{c}{s}.JPEG')
    ds = DATASETS.build(
        dict(
            type='ImageNetC',
            data_root=str(tmp_path),
            corruptions=['fog', 'snow'],
            severities=[1, 3],
            pipeline=[dict(type='LoadImageFromFile'), PACK],
        )
    )
    assert len(ds) == 8 and ds.metainfo['classes'] == ('n01', 'n02')
    out = ds[5]
    assert (out['data_samples'].corruption, out['data_samples'].severity) == ('snow', 1)
    assert int(out['data_samples'].gt_label) == 1
    with pytest.raises(FileNotFoundError, match='fog/5 is missing'):
        DATASETS.build(
            dict(
                type='ImageNetC',
                data_root=str(tmp_path),
                corruptions=['fog'],
                severities=[5],
                pipeline=[PACK],
            )
        )
