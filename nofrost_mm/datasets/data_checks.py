"""Checks of a dataloader's dataset config that cost no data reading.

``NoFrostRunner`` runs :func:`check_dataset_cfg` on the train, val and test
datasets when it is built, so that a missing data folder is reported before
any training starts (mmengine builds the val and test data only when their
loop starts, after hours of training), and before mmpretrain's ``MNIST``
tries a download from its server, which no longer serves the files:

- the plug-in's own datasets are built lazily (their argument checks run);
- mmpretrain's ``MNIST`` must find its four files, with or without
  ``download`` (:func:`check_mnist_files` names the offline converter);
- folder datasets (``CustomDataset``, ``ImageNet`` and the plug-in's
  ImageNet-R/-A/-Sketch) must find their ``data_root``, ``ann_file`` or
  image folder;
- the datasets of wrappers (``dataset``, ``datasets``) are checked alike.

Remote data (``backend_args``, URLs) is left to its loaders.
"""
import copy
import inspect
import os.path as osp

from .mnist_files import check_mnist_files


def _local(path) -> bool:
    return isinstance(path, str) and bool(path) and '://' not in path


def _missing(key: str, what: str, path: str) -> FileNotFoundError:
    return FileNotFoundError(
        f'{key}: no such {what} {path!r} (from the current folder '
        f'{osp.abspath(".")}). Put the data there, or point the key to '
        f'it: --cfg-options {key}=PATH')


def check_dataset_cfg(dataset: dict, key: str) -> None:
    """Check one dataset config without reading its data.

    Args:
        dataset (dict): The dataset config (``type`` and arguments).
        key (str): Its config key (``train_dataloader.dataset``), named in
            errors.

    Raises:
        FileNotFoundError: Naming the key (``...dataset.data_root``) and the
            path that is missing.
        ValueError | TypeError: A bad argument of a plug-in dataset.
    """
    from mmpretrain.datasets import MNIST, CustomDataset
    from mmpretrain.registry import DATASETS

    if not isinstance(dataset, dict) or not isinstance(dataset.get('type'), str):
        return
    cls = DATASETS.get(dataset['type'])
    if not inspect.isclass(cls):
        return  # an unknown type: the registry's own error comes at build
    if isinstance(dataset.get('dataset'), dict):
        check_dataset_cfg(dataset['dataset'], f'{key}.dataset')
    for i, inner in enumerate(dataset.get('datasets') or []):
        check_dataset_cfg(inner, f'{key}.datasets[{i}]')
    remote = dataset.get('backend_args') is not None
    folder_dataset = issubclass(cls, CustomDataset)
    if cls.__module__.startswith('nofrost_mm') or folder_dataset \
            or cls is MNIST:
        lazy = DATASETS.build(dict(copy.deepcopy(dataset), lazy_init=True))
    if remote:
        return
    if cls is MNIST:
        root = lazy.data_prefix['root']
        if _local(root):
            root_key = f'{key}.data_root' if dataset.get('data_root') \
                else f'{key}.data_prefix'
            check_mnist_files(root, key, dataset.get('download', True), root_key)
    elif folder_dataset:
        root = dataset.get('data_root')
        if _local(root) and not osp.isdir(root):
            raise _missing(f'{key}.data_root', 'folder', root)
        if _local(lazy.ann_file):
            if not osp.isfile(lazy.ann_file):
                raise _missing(f'{key}.ann_file', 'file', lazy.ann_file)
        elif _local(lazy.data_prefix.get('img_path')) \
                and not osp.isdir(lazy.data_prefix['img_path']):
            raise _missing(f'{key}.data_prefix', 'folder',
                           lazy.data_prefix['img_path'])
