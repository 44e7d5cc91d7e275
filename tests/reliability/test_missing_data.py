"""A missing data folder is named with its config key before any data is read
or downloaded: mmpretrain's MNIST on a stock config (whose download server is
gone), and the folder datasets (CustomDataset, ImageNet)."""

import copy

import pytest
from mmengine.config import Config

import nofrost_mm  # noqa: F401
from nofrost_mm.engine.runner import NoFrostRunner
from tests.conftest import REPO_ROOT, run_tool
from tests.reliability.helpers import DEMO
from tests.tools.test_stock_mmpretrain_config import PLUGIN_KEYS

# any connection attempt of the tool is reported and fails at once
NO_NETWORK = '''
import socket, sys

def _refuse(*args, **kwargs):
    sys.stderr.write('NETWORK ATTEMPT %r\\n' % (args[:2],))
    raise OSError('network disabled by the test')

socket.getaddrinfo = _refuse
socket.socket.connect = _refuse
socket.create_connection = _refuse
'''


def test_the_readme_stock_lenet5_config_without_data_names_the_converter(tmp_path):
    """The README's example run from a folder without data/mnist died with
    URLError from a download attempt (download=True is MNIST's default)."""
    config = tmp_path / 'lenet5_mnist_fgsmrs.py'
    config.write_text(PLUGIN_KEYS)
    guard = tmp_path / 'no_network'
    guard.mkdir()
    (guard / 'sitecustomize.py').write_text(NO_NETWORK)
    proc = run_tool(
        [str(REPO_ROOT / 'tools/train.py'), config, '--work-dir', tmp_path / 'work'],
        cwd=tmp_path,
        check=False,
        env={'PYTHONPATH': f'{guard}:{REPO_ROOT}'},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert 'NETWORK ATTEMPT' not in out and 'URLError' not in out
    assert (
        "FileNotFoundError: train_dataloader.dataset: MNIST files missing in "
        "'data/mnist': train-images-idx3-ubyte" in out
    ), out[-3000:]
    assert 'download=True cannot fetch them' in out
    # the converter by its absolute path: the run is outside the repository
    assert f'python {REPO_ROOT}/tools/dataset_converters/prepare_mnist.py --out data/mnist' in out
    assert 'or point train_dataloader.dataset.data_prefix to your own copy' in out


def _demo_with_test_dataset(tmp_path, dataset):
    cfg = Config.fromfile(DEMO)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.log_level = 'WARNING'
    cfg.test_dataloader.dataset = dict(
        dataset, pipeline=copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    )
    return cfg


@pytest.mark.parametrize(
    'dataset, key, what',
    [
        (
            dict(type='ImageNet', data_root='{tmp}/imagenet', split='val'),
            'test_dataloader.dataset.data_root',
            "no such folder '{tmp}/imagenet'",
        ),
        (
            dict(type='CustomDataset', data_root='{tmp}', ann_file='meta/val.txt'),
            'test_dataloader.dataset.ann_file',
            "no such file '{tmp}/meta/val.txt'",
        ),
        (
            dict(type='CustomDataset', data_prefix='{tmp}/images'),
            'test_dataloader.dataset.data_prefix',
            "no such folder '{tmp}/images'",
        ),
        (
            dict(
                type='ClassBalancedDataset',
                oversample_thr=0.1,
                dataset=dict(type='ImageNet', data_root='{tmp}/imagenet', split='val'),
            ),
            'test_dataloader.dataset.dataset.data_root',
            "no such folder '{tmp}/imagenet'",
        ),
    ],
)
def test_a_missing_folder_is_named_with_its_key_before_the_data_is_read(
    tmp_path, dataset, key, what, monkeypatch
):
    """mmpretrain's own error is a bare FileNotFoundError of a path, without
    the key (and for the val data only after the first training epoch)."""
    from mmengine.dataset import BaseDataset

    def fill(value):
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value.replace('{tmp}', str(tmp_path)) if isinstance(value, str) else value

    def refuse(self):
        raise AssertionError('data was read')

    runner = NoFrostRunner.from_cfg(_demo_with_test_dataset(tmp_path, fill(dataset)))
    monkeypatch.setattr(BaseDataset, 'full_init', refuse)
    with pytest.raises(FileNotFoundError) as info:
        runner.test()
    message = str(info.value)
    assert message.startswith(f'{key}: {fill(what)}'), message
    assert f'--cfg-options {key}=PATH' in message


def test_a_test_needs_no_training_data(tmp_path):
    """Evaluating on a machine without the training set: only the test data is checked."""
    (tmp_path / 'imagenet' / 'val').mkdir(parents=True)
    cfg = Config.fromfile(DEMO)
    cfg.merge_from_dict(
        {
            'work_dir': str(tmp_path / 'work'),
            'log_level': 'WARNING',
            'test_dataloader.dataset.indices': 16,
        }
    )
    cfg.train_dataloader.dataset = dict(
        type='ImageNet', data_root=str(tmp_path / 'none'), split='train', pipeline=[]
    )
    runner = NoFrostRunner.from_cfg(cfg)
    assert 0 <= runner.test()['accuracy/top1'] <= 100
    with pytest.raises(
        FileNotFoundError, match='^train_dataloader.dataset.data_root: no such folder'
    ):
        runner.train()


def test_an_existing_folder_passes(tmp_path):
    from nofrost_mm.datasets.data_checks import check_dataset_files

    (tmp_path / 'imagenet' / 'val').mkdir(parents=True)
    check_dataset_files(
        dict(type='ImageNet', data_root=str(tmp_path / 'imagenet'), split='val'),
        'test_dataloader.dataset',
    )
