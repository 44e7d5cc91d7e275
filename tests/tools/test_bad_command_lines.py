"""tools/test.py's bad command lines (issue 34's list): each a clear error that
names the option or key and the allowed values, before any checkpoint is read.

tools/test.py runs in this process (its ``main``, the same command line); the
checkpoint file is never opened, which a tripwire on the runner's loading
checks. The damaged checkpoints, work dirs and data of the same list are tested
in tests/reliability/; ``tools/misc/bad_inputs.py`` reruns the whole list.
"""

import pytest
from mmengine.runner import Runner

from tests.tools.user_path_runs import run_main

CONFIG = 'configs/demo/resnet18-w16_1xb64_digits.py'


@pytest.fixture
def never_loads(monkeypatch):
    def refuse(self):
        raise AssertionError('the checkpoint was loaded')

    monkeypatch.setattr(Runner, 'load_or_resume', refuse)


@pytest.mark.parametrize(
    'args, error, message',
    [
        (['--out-item', 'metrics'], ValueError, '--out-item needs --out FILE'),
        (
            ['--attacks', 'none', 'PGD'],
            ValueError,
            "--attacks: \"none\" cannot be combined with attacks, got ['none', 'PGD']",
        ),
        (
            ['--attacks', 'FGSM', '--num-samples', '-5'],
            ValueError,
            'test_cfg.num_samples must be None or an int >= 1, got -5',
        ),
        (
            ['--attacks', 'FGSM', '--num-samples', '0'],
            ValueError,
            'test_cfg.num_samples must be None or an int >= 1, got 0',
        ),
        (
            ['--attacks', 'FGSM', '--num-samples', '1000000'],
            ValueError,
            'test_cfg.num_samples=1000000 is larger than the test set (360 samples)',
        ),
        (
            ['--attacks', "{'type': 'PGD', 'eps': 8"],
            ValueError,
            "--attacks \"{'type': 'PGD', 'eps': 8\": not a dict literal",
        ),
        (['--attacks', 'PDG'], KeyError, "unknown attack type 'PDG'; allowed: ['APGD'"),
        (
            ['--attacks', "{'type': 'PGD', 'eps': 'eight'}"],
            ValueError,
            "attack PGD: eps='eight' must be a positive number in pixel units of 255",
        ),
        (
            ['--attacks', "{'type': 'PGDAttack', 'eps': 300}"],
            ValueError,
            'attack PGDAttack: eps=300 is out of range (0, 255]',
        ),
        (
            ['--attacks', "{'type': 'PGD', 'eps': 0.03}"],
            ValueError,
            'eps=0.03 looks like a [0, 1]-scale value; sizes are in pixel units of 255 '
            '(use eps=7.65 for 0.03 in [0, 1])',
        ),
    ],
    ids=[
        'out-item-without-out',
        'none-and-an-attack',
        'num-samples--5',
        'num-samples-0',
        'num-samples-1000000',
        'malformed-literal',
        'unknown-attack',
        'text-eps',
        'eps-300',
        'eps-0-1-scale',
    ],
)
def test_bad_command_line_fails_before_the_checkpoint_is_read(
    args, error, message, tmp_path, monkeypatch, never_loads
):
    checkpoint = tmp_path / 'never_read.pth'
    checkpoint.write_bytes(b'not read')
    with pytest.raises(error) as info:
        run_main(
            monkeypatch,
            'tools/test.py',
            [CONFIG, checkpoint, '--work-dir', tmp_path / 'run', *args],
        )
    assert message in str(info.value)


def test_a_good_command_line_does_reach_the_checkpoint(tmp_path, monkeypatch, never_loads):
    """The tripwire above is real: a valid command line hits it."""
    checkpoint = tmp_path / 'never_read.pth'
    checkpoint.write_bytes(b'not read')
    with pytest.raises(AssertionError, match='the checkpoint was loaded'):
        run_main(
            monkeypatch,
            'tools/test.py',
            [
                CONFIG,
                checkpoint,
                '--work-dir',
                tmp_path / 'run',
                '--attacks',
                'FGSM',
                '--num-samples',
                '4',
            ],
        )
