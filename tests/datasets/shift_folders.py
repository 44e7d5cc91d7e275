"""Tiny generated folders in the released layouts of the distribution-shift benchmarks."""

import json
import os.path as osp

import numpy as np
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS
from PIL import Image

from nofrost_mm.datasets.imagenet_class_lists import load_wnids

# a 1000-class NF-ResNet small enough for 2 CPU cores (8 base channels)
TINY_MODEL = dict(
    type='ImageClassifier',
    backbone=dict(
        type='NFResNet_CIFAR',
        depth=18,
        stem_channels=8,
        base_channels=8,
        out_indices=(3,),
        zero_init_last=False,
    ),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=64),
)
TINY_PREPROCESSOR = dict(
    type='ClsDataPreprocessor', num_classes=1000, mean=[127.5] * 3, std=[64.0] * 3, to_rgb=True
)


def write_images(folder, per_class=2, size=(40, 32), seed=0, ext='.png', wnids=None, names=None):
    """Random RGB images in ``folder/<wnid>/<name><ext>``; returns their paths."""
    rng = np.random.default_rng(seed)
    paths = []
    for wnid in wnids:
        (folder / wnid).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            name = names[k] if names else f'img{k}'
            path = folder / wnid / f'{name}{ext}'
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path)
            paths.append(path)
    return paths


def subset_wnids(name, picks=(0, 57, 199)):
    """A few classes of a shipped list (first, middle, last by default)."""
    wnids = load_wnids(name)
    return [wnids[i] for i in picks]


@HOOKS.register_module()
class RecordTrainBatchHook(Hook):
    """Append (iteration, batch size, loss) of every training step to
    ``<work_dir>/rank<r>_batches.json`` (test helper, via custom_imports)."""

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        path = osp.join(runner.work_dir, f'rank{runner.rank}_batches.json')
        rows = json.load(open(path)) if osp.isfile(path) else []
        rows.append([runner.iter, len(data_batch['inputs']), float(outputs['loss'].detach())])
        with open(path, 'w') as f:
            json.dump(rows, f)
