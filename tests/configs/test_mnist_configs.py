"""configs/mnist: eps 0.3 everywhere, mmpretrain's MNIST, and a tiny training."""

import copy
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import RUNNERS, init_default_scope
from mmpretrain.registry import HOOKS, MODELS

import nofrost_mm  # noqa: F401  (registers the plug-in)
from nofrost_mm.utils import follow_training_eps, training_eps
from tests.conftest import REPO_ROOT
from tests.datasets.fake_mnist import write_fake_mnist
from tools.test import robust_test_cfg

CONFIGS = sorted((REPO_ROOT / 'configs/mnist').glob('*.py'))
EPS = 76.5  # 0.3 in pixel units of 255
STEP = 2.55  # 0.01
FGSMRS = 'configs/mnist/fast-at-cnn_1xb100_mnist_fgsmrs.py'


def test_every_mnist_config_is_listed():
    assert [p.name for p in CONFIGS] == [
        'fast-at-cnn-bn_1xb100_mnist_fgsmrs.py',
        'fast-at-cnn-bn_1xb100_mnist_pgdat.py',
        'fast-at-cnn-dualbn_1xb100_mnist_pgdat.py',
        'fast-at-cnn-nf_1xb100_mnist_fgsmrs.py',
        'fast-at-cnn-nf_1xb100_mnist_pgdat.py',
        'fast-at-cnn_1xb100_mnist_fgsmrs-warmup.py',
        'fast-at-cnn_1xb100_mnist_fgsmrs.py',
        'fast-at-cnn_1xb100_mnist_nfgsm-k1.py',
        'fast-at-cnn_1xb100_mnist_nfgsm.py',
        'fast-at-cnn_1xb100_mnist_pgdat.py',
        'madry-cnn_1xb50_mnist_pgdat.py',
        'smallcnn_1xb128_mnist_trades.py',
    ]


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_mnist_config(path):
    cfg = Config.fromfile(path)
    for key, test_mode in (
        ('train_dataloader', False),
        ('val_dataloader', True),
        ('test_dataloader', True),
    ):
        dataset = cfg[key].dataset
        assert (dataset.type, dataset.data_root, dataset.download) == ('MNIST', 'data/mnist', False)
        # mmpretrain's MNIST picks its files by test_mode
        assert dataset.test_mode is test_mode
        assert dataset.split == ('test' if test_mode else 'train')
    init_default_scope('mmpretrain')
    model = copy.deepcopy(cfg.model)
    model['data_preprocessor'] = copy.deepcopy(cfg.data_preprocessor)
    classifier = MODELS.build(model)
    attack = classifier.data_preprocessor.attack
    assert attack.eps == EPS
    pre = cfg.data_preprocessor
    if '-nf_' in path.name:
        assert (pre.mean, pre.std) == ([33.32], [78.57])
    else:  # the attack's [0, 1] space is what the net sees
        assert (pre.mean, pre.std) == ([0.0], [255.0])
    method = path.stem.rsplit('_', 1)[1].split('-')[0]  # nfgsm-k1 -> nfgsm
    expected = dict(
        fgsmrs=('FGSMRS', 1.25 * EPS),
        nfgsm=('NFGSM', EPS),
        pgdat=('PGDAttack', STEP),
        trades=('PGDAttack', STEP),
    )[method]
    assert (type(attack).__name__, attack.get_step_size()) == expected
    if method == 'nfgsm':
        assert attack.noise_ratio == (1 if path.stem.endswith('-k1') else 2)
    if method in ('pgdat', 'trades'):
        assert attack.steps == 40
    hooks = [HOOKS.build(copy.deepcopy(h)) for h in cfg.custom_hooks]
    hooks[0].before_run(SimpleNamespace(model=classifier))
    assert hooks[0].val_attack.eps == EPS  # the training eps
    # the CPU-sized schedules warm eps up over 3 epochs; the published recipes do not
    warmed_up = path.stem.endswith('-warmup') or (
        path.name.startswith('fast-at-cnn') and method == 'pgdat'
    )
    assert hooks[0].eps_warmup == (3 if warmed_up else 0)
    guarded = any(type(h).__name__ == 'CatastrophicOverfittingHook' for h in hooks)
    assert guarded == (method in ('fgsmrs', 'nfgsm'))
    # the literature's evaluation: PGD-50, step 0.01, 10 restarts; AutoAttack
    assert cfg.test_cfg.type == 'RobustnessReportLoop'
    pgd, aa = follow_training_eps(cfg.test_attacks, training_eps(cfg))
    assert (
        pgd['restarts'],
        pgd['attack']['eps'],
        pgd['attack']['steps'],
        pgd['attack']['step_size'],
    ) == (10, EPS, 50, STEP)
    assert (aa['type'], aa['eps']) == ('AutoAttack', EPS)


def _runner_cfg(data_root, work_dir, **options):
    cfg = Config.fromfile(REPO_ROOT / FGSMRS)
    cfg.work_dir = str(work_dir)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = str(data_root)
    cfg.merge_from_dict(options)
    return cfg


def test_missing_files_fail_before_training_naming_the_converter(tmp_path):
    cfg = _runner_cfg(tmp_path / 'no_mnist', tmp_path / 'work')
    with pytest.raises(FileNotFoundError) as error:
        RUNNERS.build(cfg).train()
    message = str(error.value)
    assert message.startswith('train_dataloader.dataset: MNIST files missing')
    assert 'python tools/dataset_converters/prepare_mnist.py --out' in message


def test_tiny_training_and_restart_evaluation(tmp_path):
    """300 images, one epoch: it trains, logs, and its checkpoint evaluates."""
    data_root = tmp_path / 'mnist'
    write_fake_mnist(data_root, 300, 40)
    cfg = _runner_cfg(
        data_root,
        tmp_path / 'work',
        **{
            'train_cfg.max_epochs': 1,
            'train_dataloader.dataset.indices': None,
            'val_dataloader.dataset.indices': 40,
            'default_hooks.logger.interval': 1,
            'custom_hooks.1.num_samples': 20,
            'custom_hooks.1.batch_size': 20,
        },
    )
    runner = RUNNERS.build(cfg)
    runner.train()
    logged = runner.message_hub.log_scalars
    assert math.isfinite(logged['train/loss'].current())
    assert logged['train/adv_eps'].current() == EPS
    checkpoint = Path(cfg.work_dir) / 'epoch_1.pth'
    assert checkpoint.is_file()

    # tools/test.py's test set-up with cheap attacks: the config's
    # RobustnessReportLoop (restarts) loads the checkpoint and evaluates
    test_cfg = _runner_cfg(data_root, tmp_path / 'test', load_from=str(checkpoint))
    test_cfg.test_attacks = [
        dict(
            attack=dict(type='PGDAttack', eps=EPS, steps=2, step_size=40.0),
            name='PGD-2',
            restarts=3,
        )
    ]
    robust_test_cfg(test_cfg, num_samples=20)
    assert test_cfg.test_cfg.type == 'RobustnessReportLoop'
    tester = RUNNERS.build(test_cfg)
    metrics = tester.test()
    assert metrics['robust/num_samples'] == 20
    assert (
        0 <= metrics['robust/PGD-2x3'] <= metrics['robust/PGD-2'] <= metrics['robust/clean'] <= 100
    )
    # the weights evaluated are the trained ones
    trained = torch.load(checkpoint, map_location='cpu', weights_only=False)['state_dict']
    model = tester.model.state_dict()
    assert all(torch.equal(model[k], v) for k, v in trained.items())
