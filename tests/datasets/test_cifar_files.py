"""mmpretrain's CIFAR10/CIFAR100 without their files fail with the config key,
the folder and the files expected before anything is read or downloaded
(with download=True, their default, mmpretrain would download at run time:
URLError offline)."""

import pytest

import nofrost_mm  # noqa: F401
from nofrost_mm.datasets.data_checks import check_dataset_files

CIFAR = {
    'CIFAR10': (
        'cifar-10-batches-py',
        'cifar-10-python.tar.gz',
        [
            'data_batch_1',
            'data_batch_2',
            'data_batch_3',
            'data_batch_4',
            'data_batch_5',
            'test_batch',
        ],
    ),
    'CIFAR100': ('cifar-100-python', 'cifar-100-python.tar.gz', ['train', 'test']),
}


@pytest.fixture
def no_reading(monkeypatch):
    """Any data read or download attempt fails the test."""
    from mmpretrain.datasets import CIFAR10

    def refuse(*args, **kwargs):
        raise AssertionError('data was read or downloaded')

    monkeypatch.setattr(CIFAR10, 'load_data_list', refuse)
    monkeypatch.setattr(CIFAR10, '_check_integrity', refuse)


@pytest.mark.parametrize('download', [True, False])
@pytest.mark.parametrize('type_', sorted(CIFAR))
def test_an_empty_data_root_names_key_folder_and_files(tmp_path, no_reading, type_, download):
    folder, archive, names = CIFAR[type_]
    dataset = dict(type=type_, data_root=str(tmp_path), split='test', download=download)
    with pytest.raises(FileNotFoundError) as info:
        check_dataset_files(dataset, 'train_dataloader.dataset')
    message = str(info.value)
    assert message.startswith(
        f'train_dataloader.dataset.data_root: no {type_} data in '
        f"'{tmp_path}/': expected {folder}/{{{','.join(names)}}} or the "
        f'archive {archive}'
    ), message
    assert ('download=True is not used' in message) == download
    assert f'https://www.cs.toronto.edu/~kriz/{archive}' in message
    assert '--cfg-options train_dataloader.dataset.data_root=PATH' in message


def test_a_partial_folder_names_the_missing_batches(tmp_path, no_reading):
    folder, _, names = CIFAR['CIFAR10']
    (tmp_path / folder).mkdir()
    for name in names[:3]:
        (tmp_path / folder / name).write_bytes(b'')
    with pytest.raises(
        FileNotFoundError, match=r'\(data_batch_4, data_batch_5, test_batch missing\)'
    ):
        check_dataset_files(
            dict(type='CIFAR10', data_prefix=str(tmp_path)), 'val_dataloader.dataset'
        )


@pytest.mark.parametrize('type_', sorted(CIFAR))
def test_present_files_or_archive_pass_without_reading(tmp_path, no_reading, type_):
    folder, archive, names = CIFAR[type_]
    with_batches, with_archive = tmp_path / 'batches', tmp_path / 'archive'
    (with_batches / folder).mkdir(parents=True)
    for name in names:
        (with_batches / folder / name).write_bytes(b'fake')
    with_archive.mkdir()
    (with_archive / archive).write_bytes(b'fake')
    for root in (with_batches, with_archive):
        check_dataset_files(dict(type=type_, data_root=str(root)), 'train_dataloader.dataset')


def test_a_wrapped_cifar_dataset_is_checked(tmp_path, no_reading):
    dataset = dict(
        type='RepeatDataset',
        times=2,
        dataset=dict(type='CIFAR10', data_root=str(tmp_path / 'none')),
    )
    with pytest.raises(
        FileNotFoundError, match='^train_dataloader.dataset.dataset.data_root: no CIFAR10'
    ):
        check_dataset_files(dataset, 'train_dataloader.dataset')


def test_no_data_root_at_all_names_the_key(no_reading):
    with pytest.raises(ValueError, match=r'^train_dataloader.dataset.data_root: empty'):
        check_dataset_files(dict(type='CIFAR10', split='train'), 'train_dataloader.dataset')
