"""A briefly trained demo checkpoint shared by the tool tests of every xdist worker."""
import pytest
from filelock import FileLock

from tests.conftest import run_tool

STANDARD_DIGITS_CONFIG = 'configs/demo/resnet18-w16_1xb64_digits.py'


@pytest.fixture(scope='session')
def standard_digits_checkpoint(tmp_path_factory, worker_id):
    """``epoch_5.pth`` of the standard demo config trained 5 epochs.

    Trained once per test session: the xdist workers share the base temp
    folder's parent and take turns through a file lock, so the first one
    trains and the others read its file.
    """
    shared = tmp_path_factory.getbasetemp()
    if worker_id != 'master':
        shared = shared.parent
    work_dir = shared / 'standard_digits_5e'
    with FileLock(str(shared / 'standard_digits_5e.lock')):
        checkpoint = work_dir / 'epoch_5.pth'
        if not checkpoint.exists():
            # the cosine schedule ends with the 5 epochs (at epoch 5 of the
            # config's 15 the val accuracy depended on the run: 34-60%)
            run_tool(['tools/train.py', STANDARD_DIGITS_CONFIG, '--work-dir', work_dir,
                      '--cfg-options', 'train_cfg.max_epochs=5', 'train_cfg.val_interval=5',
                      'param_scheduler.T_max=5'])
    return checkpoint
