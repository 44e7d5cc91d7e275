"""A run shortened below its lr schedule says so at start (tools/train.py).

``--cfg-options train_cfg.max_epochs=1`` on the FGSM-RS MNIST config, whose
cyclic lr rises to its peak at epoch 4 of 10, trains one epoch whose lr never
leaves the ramp's first quarter; the warning names the schedulers, their
epochs and what to change, before the first iteration.
"""

from tests.datasets.fake_mnist import write_fake_mnist
from tests.tools.user_path_runs import run_main

CONFIG = 'configs/mnist/fast-at-cnn_1xb100_mnist_fgsmrs.py'


def test_train_warns_before_the_first_iteration(tmp_path, monkeypatch, capfd):
    data_root = tmp_path / 'mnist'
    write_fake_mnist(data_root, 200, 20)
    # tools/train.py's main in this process, as from a shell
    run_main(
        monkeypatch,
        'tools/train.py',
        [
            CONFIG,
            '--work-dir',
            tmp_path / 'run',
            '--cfg-options',
            'train_cfg.max_epochs=1',
            'val_dataloader.dataset.indices=20',
            *[
                f'{loader}.dataset.data_root={data_root}'
                for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
            ],
        ],
    )
    console = capfd.readouterr()
    out = console.out + console.err
    warning = (
        'WARNING - train_cfg.max_epochs=1 ends training before its parameter schedule: '
        'param_scheduler[0] (LinearLR, epochs 0-4) stops at epoch 1; '
        'param_scheduler[1] (LinearLR, epochs 4-10) never starts.'
    )
    assert warning in out
    assert out.index(warning) < out.index('Epoch(train)')
    assert 'set train_cfg.max_epochs=10' in out
    # and in the run's log file
    (log,) = (tmp_path / 'run').glob('*/*.log')
    assert warning in log.read_text()
