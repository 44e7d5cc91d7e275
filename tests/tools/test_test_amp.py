"""tools/test.py --amp on a CPU: the attacks under bf16 autocast break as many samples as in fp32.

mmengine's autocast allows only bf16 on a CPU, so this walks bf16 end to end
(fp16 is tested attack by attack in tests/attacks/test_mixed_precision_strength.py),
on the demo checkpoint with its head x10 (as confident as a well-trained net:
naive fp16 gradients underflow on it).
"""

import json

import pytest
import torch

from tests.conftest import STANDARD_DIGITS_CONFIG as CONFIG
from tests.conftest import run_tool
from tests.tools.user_path_runs import run_main

ATTACKS = [
    "{'type': 'PGDAttack', 'eps': 8, 'steps': 10, 'name': 'PGD-10'}",
    "{'type': 'PGDAttack', 'eps': 16, 'steps': 10, 'early_exit': True, 'name': 'PGD-10@16'}",
    # decides inside torchattacks: runs in fp32, with a log line
    "{'type': 'APGD', 'eps': 16, 'steps': 5, 'name': 'ta-APGD'}",
]


@pytest.fixture(scope='module')
def sharpened_checkpoint(standard_digits_checkpoint, tmp_path_factory):
    checkpoint = torch.load(standard_digits_checkpoint, map_location='cpu', weights_only=False)
    for key in ('head.fc.weight', 'head.fc.bias'):
        checkpoint['state_dict'][key] = checkpoint['state_dict'][key] * 10
    path = tmp_path_factory.mktemp('sharp') / 'sharpened_x10.pth'
    torch.save(checkpoint, path)
    return path


def _argv(checkpoint, work_dir, *extra):
    return [
        CONFIG,
        checkpoint,
        '--work-dir',
        work_dir,
        '--out',
        work_dir / 'results.json',
        '--num-samples',
        '128',
        '--attacks',
        *ATTACKS,
        *extra,
    ]


def test_amp_attacks_are_as_strong_and_say_their_precision(
    sharpened_checkpoint, tmp_path, monkeypatch
):
    # the fp32 reference by tools/test.py's main in this process (a process
    # would spend most of its time importing torch), the --amp run by the command
    run_main(monkeypatch, 'tools/test.py', _argv(sharpened_checkpoint, tmp_path / 'fp32'))
    fp32 = json.loads((tmp_path / 'fp32' / 'results.json').read_text())
    proc = run_tool(['tools/test.py', *_argv(sharpened_checkpoint, tmp_path / 'amp', '--amp')])
    amp = json.loads((tmp_path / 'amp' / 'results.json').read_text())
    log = proc.stdout + proc.stderr
    assert amp['robust/clean'] == fp32['robust/clean']  # decided in fp32 either way
    assert fp32['robust/PGD-10@16'] < fp32['robust/clean'] - 20  # attacks break samples
    for name in ('PGD-10', 'PGD-10@16', 'ta-APGD'):
        assert amp[f'robust/{name}'] <= fp32[f'robust/{name}'] + 1, name
        assert fp32[f'robust/precision/{name}'] == 'fp32'
    # under bf16 PGD's survivors take one fp32 step (fp32_polish)
    assert amp['robust/precision/PGD-10'] == 'bf16 (polish fp32)'
    assert amp['robust/precision/PGD-10@16'] == 'bf16 (polish fp32)'
    assert amp['robust/precision/ta-APGD'] == 'fp32'
    assert log.count("APGD(eps=16, steps=5) runs in fp32 under bf16 autocast") == 1
