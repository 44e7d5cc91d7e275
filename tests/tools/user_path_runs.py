"""The config families users have, each trained once at a tiny size with
``tools/train.py``, shared by the tool tests of ``tests/tools/test_user_paths*.py``.

A family is a config as a user has it (a shipped demo config, or mmpretrain's
own LeNet-5 config plus the plug-in's keys) and the ``--cfg-options`` that
shrink it to a few seconds: one epoch of two iterations, 16 validation
images, attacks of two steps.
"""

import dataclasses
import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import List, Optional

import pytest
from filelock import FileLock

from tests.conftest import REPO_ROOT, run_tool
from tests.datasets.fake_mnist import write_fake_mnist
from tests.tools.test_stock_mmpretrain_config import PLUGIN_KEYS

DEMO = REPO_ROOT / 'configs/demo'
# two iterations of 16 images, 16 validation images (their robust validation too)
TINY_DIGITS = [
    'train_cfg.max_epochs=1',
    'train_dataloader.dataset.indices=32',
    'train_dataloader.batch_size=16',
    'val_dataloader.dataset.indices=16',
    'val_dataloader.batch_size=16',
]
# the AT configs' robust validation: PGD-20 -> PGD-2
TINY_AT = TINY_DIGITS + ['custom_hooks.0.val_attack.steps=2']


@dataclasses.dataclass
class Family:
    """One family of configs, and how the tests shrink it.

    Args:
        name (str): The family's test id.
        config (str): The config file; for ``stock`` the name of the one
            written into the shared folder (with its fake MNIST data's path).
        train_options (list): ``--cfg-options`` of the tiny training (the
            plain family is the session's 5-epoch run, see :func:`trained`).
        eps (float, optional): Its training eps (pixel units of 255), which
            the attacks that name none follow; None: standard training.
    """

    name: str
    config: str
    train_options: List[str]
    eps: Optional[float] = 32


FAMILIES = {
    f.name: f
    for f in (
        Family('plain', str(DEMO / 'resnet18-w16_1xb64_digits.py'), TINY_DIGITS, eps=None),
        Family('pgd-at', str(DEMO / 'resnet18-w16_1xb64_digits_pgdat.py'), TINY_AT),
        # the catastrophic-overfitting guard checks after the one epoch, on 8 images
        Family(
            'single-step',
            str(DEMO / 'resnet18-w16_1xb64_digits_fgsmrs.py'),
            TINY_AT + ['custom_hooks.1.interval=1', 'custom_hooks.1.num_samples=8'],
        ),
        Family('nf', str(DEMO / 'nf-resnet18-w16_1xb64_digits_pgdat.py'), TINY_AT),
        # mmpretrain's lenet5_mnist.py plus the plug-in's keys, on fake MNIST files
        Family(
            'stock',
            'lenet5_mnist_fgsmrs.py',
            ['train_cfg.max_epochs=1', 'train_dataloader.batch_size=16'],
            eps=76.5,
        ),
    )
}
# the data of the stock config, written into it: the analysis tools take no
# --cfg-options
STOCK_DATA = """
train_dataloader = dict(num_workers=0, persistent_workers=False,
                        dataset=dict(data_prefix='{data}'))
val_dataloader.update(batch_size=16, num_workers=0, persistent_workers=False)  # test_dataloader too
val_dataloader['dataset']['data_prefix'] = '{data}'
default_hooks = dict(logger=dict(interval=1))
"""


@dataclasses.dataclass
class Run:
    """A family trained once: its config, checkpoint and training log.

    Args:
        family (Family): The family.
        config (Path): The config file trained.
        checkpoint (Path): The checkpoint of its last epoch.
        log (str): The training's console output (stdout and stderr).
    """

    family: Family
    config: Path
    checkpoint: Path
    log: str


def _config(family: Family, folder: Path) -> Path:
    if family.name != 'stock':
        return Path(family.config)
    config = folder / family.config
    if not config.exists():
        data = folder / 'mnist'
        write_fake_mnist(data, 32, 16)
        config.write_text(PLUGIN_KEYS + STOCK_DATA.format(data=data))
    return config


def train_family(family: Family, folder: Path) -> Run:
    """``tools/train.py`` on a family's config in ``folder/name``, once:
    a later call (another test process too) reads the finished run."""
    folder.mkdir(parents=True, exist_ok=True)
    work_dir = folder / family.name
    console = folder / f'{family.name}_train_console.log'
    with FileLock(str(folder / f'{family.name}.lock')):
        config = _config(family, folder)
        if not console.exists():
            proc = run_tool(
                [
                    'tools/train.py',
                    config,
                    '--work-dir',
                    work_dir,
                    '--cfg-options',
                    *family.train_options,
                ]
            )
            console.write_text(proc.stdout + proc.stderr)
    return Run(family, config, work_dir / 'epoch_1.pth', console.read_text())


def shared_folder(tmp_path_factory, worker_id) -> Path:
    """The folder of the shared runs, the same in every test process of the
    session (see ``standard_digits_checkpoint`` in tests/conftest.py)."""
    shared = tmp_path_factory.getbasetemp()
    if worker_id != 'master':
        shared = shared.parent
    return shared / 'user_path_runs'


@pytest.fixture(scope='session')
def user_path_folder(tmp_path_factory, worker_id):
    """A folder every test process of the session shares (:func:`shared_folder`)."""
    return shared_folder(tmp_path_factory, worker_id)


@pytest.fixture(scope='session')
def trained(user_path_folder, request):
    """``trained(name)``: the :class:`Run` of the family ``name``.

    The plain family is the session's ``standard_digits_checkpoint`` (trained
    for the tool tests anyway; its training is tested by
    tests/tools/test_train_test_tools.py).
    """

    def run(name):
        if name == 'plain':
            checkpoint = request.getfixturevalue('standard_digits_checkpoint')
            return Run(FAMILIES[name], Path(FAMILIES[name].config), checkpoint, log='')
        return train_family(FAMILIES[name], user_path_folder)

    return run


def robust_results(metrics: dict) -> dict:
    """The accuracy numbers of a robust evaluation (not its timings, nor the
    precision each attack ran in)."""
    return {
        k: v
        for k, v in metrics.items()
        if k.startswith('robust/') and not re.match(r'robust/(time_s|precision)/', k)
    }


# tools/test.py's cheapest robust evaluation: 4 images, PGD-2 and FGSM, both
# at the training eps (neither names one)
TEST_ARGS = ['--num-samples', '4', '--attacks', "{'type': 'PGDAttack', 'steps': 2}", 'FGSM']
# the catastrophic-overfitting guard's check, on its 8 images at the final eps
GUARD_CHECK = (
    r'CatastrophicOverfittingHook \(epoch 1\): clean [\d.]+%, PGD-5 [\d.]+%, '
    r'FGSM [\d.]+% on 8 held-out images at eps 32/255'
)


def tool_module(path: str, name: str):
    """A tool script as a module (its main runs in this process: a second
    process would spend most of a test importing torch)."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_main(monkeypatch, path: str, argv: list) -> None:
    """A tool whose ``main()`` reads ``sys.argv``, run here as from a shell
    in the repository (as :func:`tests.conftest.run_tool` runs it)."""
    monkeypatch.chdir(REPO_ROOT)
    module = tool_module(path, f'user_path_{Path(path).stem}')
    monkeypatch.setattr(sys, 'argv', [path] + [str(a) for a in argv])
    module.main()


@pytest.fixture(scope='session')
def one_process(trained, tmp_path_factory):
    """``one_process(name)``: tools/test.py's results and log file on a
    family's run (:data:`TEST_ARGS`), once a test process."""
    done = {}

    def run(name):
        if name not in done:
            r = trained(name)
            folder = tmp_path_factory.mktemp(f'test_{name}')
            with pytest.MonkeyPatch.context() as monkeypatch:
                run_main(
                    monkeypatch,
                    'tools/test.py',
                    [
                        r.config,
                        r.checkpoint,
                        '--work-dir',
                        folder,
                        '--out',
                        folder / 'results.json',
                        *TEST_ARGS,
                    ],
                )
            (log,) = folder.glob('*/*.log')
            done[name] = json.loads((folder / 'results.json').read_text()), log.read_text()
        return done[name]

    return run
