"""tools/misc/bad_inputs.py: which line of a command's output its table shows."""

import importlib.util
import shlex

import pytest

from tests.conftest import REPO_ROOT


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location(
        'bad_inputs_tool', REPO_ROOT / 'tools/misc/bad_inputs.py'
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TRACEBACK = """12/07 14:04:57 - mmengine - INFO - Checkpoints will be saved to /w.
Traceback (most recent call last):
  File "/work/main/tools/test.py", line 188, in <module>
    main()
ValueError: --out-item needs --out FILE
/x/mmcv/cnn/bricks/transformer.py:33: UserWarning: Fail to import ``MultiScaleDeformableAttention``
  warnings.warn('Fail to import ``MultiScaleDeformableAttention`` from '
"""
RANK_ERROR = """[rank1]: Traceback (most recent call last):
[rank1]: FileNotFoundError: train_dataloader.dataset: MNIST files missing in 'data/mnist'
============================================================
tools/train.py FAILED
------------------------------------------------------------
"""
# exit code 0: a warning says what happened, library deprecations do not
WARNED = """12/07 14:17:49 - mmengine - WARNING - --resume: no checkpoint in /w: starts from scratch
12/07 14:17:49 - mmengine - WARNING - "HardDiskBackend" ... will be deprecated in future.
12/07 14:17:49 - mmengine - INFO - Epoch(val) [1][1/1]    accuracy/top1: 25.0000
/x/torch/utils/data/dataloader.py:759: UserWarning: 'pin_memory' argument is set as true
"""
QUIET = """readme_normfree_converter: 8 blocks, final variance 2.127
plot saved to /w/spp.png
/x/importlib/__init__.py:169: UserWarning: pkg_resources is deprecated as an API.
  _bootstrap._exec(spec, module)
"""


@pytest.mark.parametrize(
    'output, line',
    [
        (TRACEBACK, 'ValueError: --out-item needs --out FILE'),
        (
            RANK_ERROR,
            "[rank1]: FileNotFoundError: train_dataloader.dataset: MNIST files missing "
            "in 'data/mnist'",
        ),
        (WARNED, 'WARNING: --resume: no checkpoint in /w: starts from scratch'),
        (QUIET, 'plot saved to /w/spp.png'),
        ('', ''),
    ],
    ids=['exception', 'rank', 'warning', 'last-line', 'empty'],
)
def test_last_meaningful_line(tool, output, line):
    assert tool.last_meaningful_line(output) == line


def test_commands_are_shown_as_a_user_types_them(tool):
    cmd = ['python', 'tools/test.py', '--attacks', "{'type': 'PGD', 'eps': 8}", 'a b', "it's $HOME"]
    shown = tool.shell_words(cmd)
    assert shown == (
        'python tools/test.py --attacks "{\'type\': \'PGD\', \'eps\': 8}" '
        "'a b' 'it'\"'\"'s $HOME'"
    )
    assert shlex.split(shown) == cmd  # pastes back into a shell as the same words
