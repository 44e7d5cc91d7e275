"""A stock mmpretrain config (its own lenet/lenet5_mnist.py, inherited with
``mmpretrain::``) gains adversarial training with the plug-in's keys only,
and trains and tests with the tools as any config does (its training is the
``stock`` family's shared run of tests/tools/user_path_runs.py)."""

import json

import pytest

from tests.conftest import run_tool

PLUGIN_KEYS = """
_base_ = ['mmpretrain::lenet/lenet5_mnist.py']
custom_imports = dict(imports=['nofrost_mm'], allow_failed_imports=False)
runner_type = 'NoFrostRunner'
model = dict(type='AdvImageClassifier', adv_loss_weight=1.0)
data_preprocessor = dict(type='PGDDataPreprocessor', eps=76.5,
                         attack=dict(type='FGSMRS', clip_start=False))
custom_hooks = [dict(type='AdversarialTrainingHook', adv_val_interval=1)]
val_dataloader = dict(dataset=dict(split='test'))  # the stock config evaluates on the training split
test_dataloader = val_dataloader
"""


@pytest.fixture(scope='module')
def stock_run(tmp_path_factory, worker_id):
    """The ``stock`` family's run of tests/tools/user_path_runs.py (this
    config on fake MNIST files, trained once per session by tools/train.py)."""
    # imported here: user_path_runs imports PLUGIN_KEYS from this module
    from tests.tools.user_path_runs import FAMILIES, shared_folder, train_family

    return train_family(FAMILIES['stock'], shared_folder(tmp_path_factory, worker_id))


def test_a_stock_config_with_the_plugin_keys_trains_and_tests(stock_run, tmp_path):
    # the config holds PLUGIN_KEYS and its data's path (the shared run)
    assert stock_run.config.read_text().startswith(PLUGIN_KEYS)
    # the attack ran at the config's eps, and validation measured robustness
    assert 'adv_eps: 76.5000' in stock_run.log and 'robust_accuracy/top1' in stock_run.log
    # validation reads MNIST's test files (mmpretrain warns when it would read the training set)
    assert 'The training set will be used' not in stock_run.log
    checkpoint = stock_run.checkpoint
    assert checkpoint.is_file()

    # the literature's test attacks from the command line: a restarts entry
    # and a bare name, both at the training eps
    results = tmp_path / 'results.json'
    run_tool(
        [
            'tools/test.py',
            stock_run.config,
            checkpoint,
            '--work-dir',
            tmp_path / 'test',
            '--out',
            results,
            '--attacks',
            "{'attack': {'type': 'PGDAttack', 'steps': 5}, 'restarts': 2, 'name': 'PGD-5'}",
            'FGSM',
            '--cfg-options',
            'test_dataloader.batch_size=8',
        ]
    )
    metrics = json.loads(results.read_text())
    assert metrics['robust/num_samples'] == 16  # the fake test split
    assert (
        0 <= metrics['robust/PGD-5x2'] <= metrics['robust/PGD-5'] <= metrics['robust/clean'] <= 100
    )
    assert 0 <= metrics['robust/FGSM'] <= metrics['robust/clean']
    log = next((tmp_path / 'test').glob('*/*.log')).read_text()
    assert "eps=76.5, type='FGSM'" in log or "'eps': 76.5, 'type': 'FGSM'" in log
