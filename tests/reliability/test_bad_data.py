"""Unreadable images: an error with the path, or skipped and counted (config)."""

import logging

import cv2
import numpy as np
import pytest
from mmengine.logging import MMLogger
from mmpretrain.registry import DATASETS

import nofrost_mm  # noqa: F401
from nofrost_mm.datasets import SklearnDigits
from nofrost_mm.datasets.transforms.checked_load_image import BadImageError
from tests.reliability.helpers import write_config
from tests.tools.user_path_runs import run_main


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory):
    """24 real digit PNGs in class folders, 3 of them broken in different ways."""
    root = tmp_path_factory.mktemp('digits_png')
    dataset = SklearnDigits(split='test', indices=24)
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        folder = root / str(info['gt_label'])
        folder.mkdir(exist_ok=True)
        cv2.imwrite(str(folder / f'{i:03d}.png'), info['img'])
    files = sorted(root.glob('*/*.png'))
    truncated, empty, text = files[3], files[10], files[17]
    truncated.write_bytes(truncated.read_bytes()[:60])
    empty.write_bytes(b'')
    text.write_text('not an image')
    return root, {str(truncated), str(empty), str(text)}


def _dataset(root, **load_args):
    return DATASETS.build(
        dict(
            type='CustomDataset',
            data_root=str(root),
            pipeline=[dict(type='CheckedLoadImageFromFile', **load_args), dict(type='PackInputs')],
        )
    )


def test_raise_names_the_file(image_folder):
    root, bad = image_folder
    dataset = _dataset(root)
    errors = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        if info['img_path'] not in bad:
            assert dataset[i]['inputs'].shape == (3, 32, 32)
            continue
        with pytest.raises(BadImageError) as error:
            dataset[i]
        errors.append(str(error.value))
        assert str(error.value).startswith(f'cannot read image {info["img_path"]}: ')
    assert len(errors) == len(bad)
    assert any('the file is empty' in e for e in errors)
    assert any('cannot be decoded' in e for e in errors)


def test_skip_counts_and_logs_each_bad_file(image_folder):
    root, bad = image_folder
    dataset = _dataset(root, on_bad_image='skip')
    loader = dataset.pipeline.transforms[0]
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        np.random.seed(0)  # BaseDataset draws the replacement sample from numpy
        samples = [dataset[i] for i in range(len(dataset))]
    finally:
        logger.removeHandler(handler)
    assert len(samples) == len(dataset)
    assert all(s['inputs'].shape == (3, 32, 32) for s in samples)
    skipped = [
        r.getMessage() for r in records if 'CheckedLoadImageFromFile: skipped' in r.getMessage()
    ]
    assert loader.skipped == len(skipped) >= len(bad)
    assert {m.split('skipped ')[1].split(' (')[0] for m in skipped} == bad
    assert skipped[-1].endswith(f'{loader.skipped} skipped so far')


def test_skip_limit(image_folder):
    root, bad = image_folder
    dataset = _dataset(root, on_bad_image='skip', max_skipped=1)
    with pytest.raises(BadImageError, match='more than max_skipped=1'):
        for i in range(len(dataset)):
            dataset[i]


def test_training_on_a_broken_folder_names_the_file(image_folder, tmp_path, monkeypatch):
    root, bad = image_folder
    config = write_config(
        tmp_path / 'cfg.py',
        body=(
            "train_dataloader = dict(batch_size=8, dataset=dict(\n"
            f"    _delete_=True, type='CustomDataset', data_root='{root}',\n"
            "    pipeline=[dict(type='CheckedLoadImageFromFile'), dict(type='PackInputs')]))\n"
            "train_cfg = dict(max_epochs=1)\n"
        ),
    )
    # tools/train.py's main in this process (a process would spend most of
    # the test importing torch): the error that ends the command
    with pytest.raises(BadImageError) as info:
        run_main(
            monkeypatch,
            'tools/train.py',
            [config, '--work-dir', tmp_path / 'run', '--no-validate'],
        )
    assert str(info.value).split('cannot read image ')[1].split(':')[0] in bad
