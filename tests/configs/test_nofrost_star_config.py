"""configs/nofrost/nf-resnet50_8xb32_in1k_nofrost-star.py: NoFrost* trains on CPU,
in 1 and 2 processes, on tiny generated ImageNet + view folders (N samples x 4 views)."""

import json

from mmengine.config import Config
from mmengine.registry import RUNNERS

import nofrost_mm  # noqa: F401
from nofrost_mm.datasets.imagenet_class_lists import load_wnids
from tests.conftest import REPO_ROOT, free_port, run_tool
from tests.datasets.shift_folders import write_images

STAR = REPO_ROOT / 'configs/nofrost/nf-resnet50_8xb32_in1k_nofrost-star.py'
VIEWS = ('deepaugment_edsr', 'deepaugment_cae', 'stylized')


def test_config_wraps_the_nofrost_recipe():
    star = Config.fromfile(STAR)
    nofrost = Config.fromfile(REPO_ROOT / 'configs/nofrost/nf-resnet50_8xb32_in1k_pgdat.py')
    loader = star.train_dataloader
    assert loader.collate_fn == dict(type='multi_view_collate')
    assert loader.dataset.type == 'MultiViewDataset' and tuple(loader.dataset.views) == VIEWS
    assert loader.dataset.dataset == nofrost.train_dataloader.dataset
    assert loader.batch_size * (1 + len(VIEWS)) == nofrost.train_dataloader.batch_size
    for key in ('model', 'data_preprocessor', 'optim_wrapper', 'test_attacks'):
        assert star[key] == nofrost[key], key
    assert star.train_cfg.max_epochs == star.param_scheduler.T_max == 30


def _tiny_config(tmp_path):
    """The NoFrost* config with a tiny NF net, 32 px crops, PGD-2, tmp folders."""
    wnids = load_wnids('imagenet')[:4]
    data = tmp_path / 'imagenet'
    paths = write_images(data / 'train', wnids=wnids, per_class=2, size=(40, 36))
    (data / 'meta').mkdir()
    (data / 'meta' / 'train.txt').write_text(
        ''.join(f'{p.parent.name}/{p.name} {i // 2}\n' for i, p in enumerate(paths))
    )
    for k, view in enumerate(VIEWS):  # the same files, other pixels and sizes
        write_images(
            tmp_path / view / 'train',
            wnids=wnids,
            per_class=2,
            size=(40 + 8 * k, 36 + 8 * k),
            seed=k + 1,
        )
    views = {v: str(tmp_path / v / 'train') for v in VIEWS}
    config = tmp_path / 'star_tiny.py'
    config.write_text(f"""
_base_ = ['{STAR}']
custom_imports = dict(imports=['nofrost_mm', 'tests.datasets.shift_folders'],
                      allow_failed_imports=False)
model = dict(backbone=dict(_delete_=True, type='NFResNet_CIFAR', depth=18, stem_channels=8,
                           base_channels=8, out_indices=(3, ), zero_init_last=False),
             head=dict(in_channels=64))
data_preprocessor = dict(attack=dict(steps=2))
train_dataloader = dict(batch_size=2, num_workers=0, dataset=dict(
    views={views!r},
    dataset=dict(data_root='{data}', pipeline=[
        dict(type='LoadImageFromFile'), dict(type='RandomResizedCrop', scale=32),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'), dict(type='PackInputs')])))
train_cfg = dict(max_epochs=1)
val_dataloader = None
val_cfg = None
val_evaluator = None
custom_hooks = [*_base_.custom_hooks, dict(type='RecordTrainBatchHook')]
default_hooks = dict(checkpoint=dict(save_best=None), logger=dict(interval=1))
randomness = dict(seed=0)
""")
    return config


def _batches(work_dir, rank):
    return json.loads((work_dir / f'rank{rank}_batches.json').read_text())


def test_nofrost_star_trains_in_one_and_two_processes(tmp_path):
    config = _tiny_config(tmp_path)
    cfg = Config.fromfile(config)
    cfg.work_dir = str(tmp_path / 'one')
    cfg.experiment_name = f'nofrost_star_{tmp_path.name}'
    RUNNERS.build(cfg).train()
    one = _batches(tmp_path / 'one', 0)
    # 8 samples / batch 2 = 4 steps of 2 samples x 4 views
    assert [(it, n) for it, n, _ in one] == [(0, 8), (1, 8), (2, 8), (3, 8)]
    assert all(loss == loss and 0 < loss < 20 for _, _, loss in one)

    proc = run_tool(
        ['tools/dist_train.sh', config, '2', '--work-dir', tmp_path / 'two'],
        env={'PORT': str(free_port())},
    )
    assert 'Epoch(train) [1][2/2]' in proc.stdout + proc.stderr
    for rank in (0, 1):  # each rank: 2 steps of its 2 samples x 4 views
        assert [(it, n) for it, n, _ in _batches(tmp_path / 'two', rank)] == [(0, 8), (1, 8)]
