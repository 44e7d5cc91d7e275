"""A stock mmpretrain config (its own lenet/lenet5_mnist.py, inherited with
``mmpretrain::``) gains adversarial training with the plug-in's keys only,
and trains and tests with the tools as any config does."""

import json

from tests.conftest import run_tool
from tests.datasets.fake_mnist import write_fake_mnist

PLUGIN_KEYS = """
_base_ = ['mmpretrain::lenet/lenet5_mnist.py']
custom_imports = dict(imports=['nofrost_mm'], allow_failed_imports=False)
runner_type = 'NoFrostRunner'
model = dict(type='AdvImageClassifier', adv_loss_weight=1.0)
data_preprocessor = dict(type='PGDDataPreprocessor', eps=76.5,
                         attack=dict(type='FGSMRS', clip_start=False))
custom_hooks = [dict(type='AdversarialTrainingHook', adv_val_interval=1)]
"""


def test_a_stock_config_with_the_plugin_keys_trains_and_tests(tmp_path):
    data = tmp_path / 'mnist'
    write_fake_mnist(data, 200, 40)
    config = tmp_path / 'lenet5_mnist_fgsmrs.py'
    config.write_text(PLUGIN_KEYS)
    options = ['train_cfg.max_epochs=1', 'default_hooks.logger.interval=1']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options += [
            f'{loader}.dataset.data_prefix={data}',
            f'{loader}.num_workers=0',
            f'{loader}.persistent_workers=False',
        ]
    work = tmp_path / 'work'
    out = run_tool(['tools/train.py', config, '--work-dir', work, '--cfg-options', *options]).stdout
    # the attack ran at the config's eps, and validation measured robustness
    assert 'adv_eps: 76.5000' in out and 'robust_accuracy/top1' in out
    checkpoint = work / 'epoch_1.pth'
    assert checkpoint.is_file()

    # the literature's test attacks from the command line: a restarts entry
    # and a bare name, both at the training eps
    results = tmp_path / 'results.json'
    run_tool(
        [
            'tools/test.py',
            config,
            checkpoint,
            '--work-dir',
            tmp_path / 'test',
            '--out',
            results,
            '--attacks',
            "{'attack': {'type': 'PGDAttack', 'steps': 5}, 'restarts': 2, 'name': 'PGD-5'}",
            'FGSM',
            '--cfg-options',
            *options,
        ]
    )
    metrics = json.loads(results.read_text())
    assert metrics['robust/num_samples'] == 40
    assert (
        0 <= metrics['robust/PGD-5x2'] <= metrics['robust/PGD-5'] <= metrics['robust/clean'] <= 100
    )
    assert 0 <= metrics['robust/FGSM'] <= metrics['robust/clean']
    log = next((tmp_path / 'test').glob('*/*.log')).read_text()
    assert "eps=76.5, type='FGSM'" in log or "'eps': 76.5, 'type': 'FGSM'" in log
