"""Checks of a dataloader's dataset config that cost no data reading.

``NoFrostRunner`` runs them (:func:`check_dataloaders`) before any data is
read: mmengine builds the val and test data only when their loop starts (the
val data after the training data), and mmpretrain's ``MNIST`` tries a
download from a server that no longer serves the files.

- :func:`check_dataset_args`, when the runner is built, for the train, val
  and test datasets: the plug-in's own datasets are built lazily, so their
  argument checks run;
- :func:`check_dataset_files`, when a run starts, for the datasets that run
  reads (train and val for training, test for a test, so that evaluating
  on a machine without the training data works): mmpretrain's ``MNIST``
  must find its four files, with or without ``download``
  (:func:`check_mnist_files` names the offline converter), its ``CIFAR10``
  and ``CIFAR100`` their batch files or archive (:func:`check_cifar_files`;
  with ``download=True``, their default, they would download the archive at
  run time); folder datasets
  (``CustomDataset``, ``ImageNet``, the plug-in's ImageNet-R/-A/-Sketch)
  must find their ``data_root``, ``ann_file`` or image folder.

The datasets inside wrappers (``dataset``, ``datasets``) are checked alike.
Remote data (``backend_args``, URLs) is left to its loaders.
"""

import copy
import inspect
import os.path as osp
from typing import Any, Dict, Iterator, Optional, Tuple

from .mnist_files import check_mnist_files


def _local(path) -> bool:
    return isinstance(path, str) and bool(path) and '://' not in path


def _missing(key: str, what: str, path: str) -> FileNotFoundError:
    return FileNotFoundError(
        f'{key}: no such {what} {path!r} (from the current folder '
        f'{osp.abspath(".")}). Put the data there, or point the key to '
        f'it: --cfg-options {key}=PATH'
    )


def _datasets(dataset, key: str) -> Iterator[Tuple[dict, str, type]]:
    """``(config, key, class)`` of a dataset config and of those it wraps."""
    from mmpretrain.registry import DATASETS

    if not isinstance(dataset, dict) or not isinstance(dataset.get('type'), str):
        return
    if isinstance(dataset.get('dataset'), dict):
        yield from _datasets(dataset['dataset'], f'{key}.dataset')
    for i, inner in enumerate(dataset.get('datasets') or []):
        yield from _datasets(inner, f'{key}.datasets[{i}]')
    cls = DATASETS.get(dataset['type'])
    if inspect.isclass(cls):  # an unknown type: the registry's error at build
        yield dataset, key, cls


def _lazy(dataset: dict):
    from mmpretrain.registry import DATASETS

    return DATASETS.build(dict(copy.deepcopy(dataset), lazy_init=True))


def check_dataset_args(dataset: dict, key: str) -> None:
    """Build the plug-in's datasets in ``dataset`` lazily (their checks run).

    Args:
        dataset (dict): The dataset config (``type`` and arguments).
        key (str): Its config key (``val_dataloader.dataset``).

    Raises:
        ValueError | TypeError: A bad argument, named by the dataset.
    """
    for cfg, _, cls in _datasets(dataset, key):
        if cls.__module__.startswith('nofrost_mm'):
            _lazy(cfg)


def check_dataloaders(loaders: Dict[str, Any], files: bool = False) -> None:
    """Check the dataset configs of dataloaders not built yet.

    Args:
        loaders (dict): Config key (``'val_dataloader'``) -> the dataloader's
            config; a built dataloader (or None) is skipped.
        files (bool): Check that the data is where the configs say
            (:func:`check_dataset_files`); else build the plug-in's datasets
            lazily (:func:`check_dataset_args`). Defaults to False.
    """
    check = check_dataset_files if files else check_dataset_args
    for name, loader in loaders.items():
        if isinstance(loader, dict):
            check(loader.get('dataset'), f'{name}.dataset')


def check_cifar_files(
    cls: type, root: str, key: str, download: bool = True, root_key: Optional[str] = None
) -> None:
    """Raise a clear error when ``root`` holds neither CIFAR batches nor archive.

    mmpretrain's ``CIFAR10`` (and ``CIFAR100``) reads its batch files from
    ``root/base_folder``; without them it downloads the archive with
    ``download=True`` (its default: ``URLError`` offline, and a run that
    must not download at all) or fails with a message about
    ``download=True``. Present files pass without being read (their MD5
    sums are mmpretrain's to check); the archive alone passes too, since
    mmpretrain unpacks a valid one in place of a download.

    Args:
        cls (type): ``CIFAR10``, ``CIFAR100`` or a subclass: its
            ``base_folder``, ``train_list``, ``test_list``, ``filename`` and
            ``url`` say which files it reads.
        root (str): The folder it reads (``data_root`` joined with
            ``data_prefix``).
        key (str): The config key of the dataset, named in the error.
        download (bool): The dataset's ``download``. Defaults to True.
        root_key (str, optional): The key that sets ``root``. Defaults to
            None (``{key}.data_root``).

    Raises:
        FileNotFoundError: Naming the key, the folder, the files expected
            and where to get them.
    """
    root_key = root_key or f'{key}.data_root'
    # every batch, whatever the split: mmpretrain checks them all
    names = [name for name, _ in cls.train_list + cls.test_list]
    folder = osp.join(root, cls.base_folder)
    missing = [n for n in names if not osp.isfile(osp.join(folder, n))]
    if not missing or osp.isfile(osp.join(root, cls.filename)):
        return
    why = ' (download=True is not used: nothing is downloaded at run time)' if download else ''
    expected = f'{cls.base_folder}/{{{",".join(names)}}}'
    found = '' if len(missing) == len(names) else f' ({", ".join(missing)} missing)'
    raise FileNotFoundError(
        f'{root_key}: no {cls.__name__} data in {root!r}: expected '
        f'{expected}{found} or the archive {cls.filename}{why}. Get the '
        f'archive from {cls.url} on a machine with network access and '
        f'unpack it there (`mkdir -p {root} && tar -xzf {cls.filename} -C '
        f'{root}`), or point the key to your copy: --cfg-options '
        f'{root_key}=PATH'
    )


def check_dataset_files(dataset: dict, key: str) -> None:
    """Check that the data of ``dataset`` is where its config says.

    Args:
        dataset (dict): The dataset config (``type`` and arguments).
        key (str): Its config key (``train_dataloader.dataset``), named in
            errors.

    Raises:
        FileNotFoundError: Naming the key (``...dataset.data_root``) and the
            path that is missing.
    """
    from mmpretrain.datasets import CIFAR10, MNIST, CustomDataset

    for cfg, key, cls in _datasets(dataset, key):
        if cfg.get('backend_args') is not None:
            continue
        if cls is MNIST or issubclass(cls, CIFAR10):
            root_key = f'{key}.data_root' if cfg.get('data_root') else f'{key}.data_prefix'
            if not cfg.get('data_root') and not cfg.get('data_prefix') and issubclass(cls, CIFAR10):
                raise ValueError(
                    f'{key}.data_root: empty; set it to the folder that holds '
                    f'{cls.base_folder}/ (--cfg-options {key}.data_root=PATH)'
                )
            root = _lazy(cfg).data_prefix['root']
            if not _local(root):
                continue
            if cls is MNIST:
                check_mnist_files(root, key, cfg.get('download', True), root_key)
            else:
                check_cifar_files(cls, root, key, cfg.get('download', True), root_key)
        elif issubclass(cls, CustomDataset):
            root = cfg.get('data_root')
            if _local(root) and not osp.isdir(root):
                raise _missing(f'{key}.data_root', 'folder', root)
            lazy = _lazy(cfg)
            if _local(lazy.ann_file):
                if not osp.isfile(lazy.ann_file):
                    raise _missing(f'{key}.ann_file', 'file', lazy.ann_file)
            elif _local(lazy.data_prefix.get('img_path')) and not osp.isdir(
                lazy.data_prefix['img_path']
            ):
                raise _missing(f'{key}.data_prefix', 'folder', lazy.data_prefix['img_path'])
