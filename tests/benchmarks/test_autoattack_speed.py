"""benchmarks/autoattack_speed.py at a tiny size: both implementations on the
same images, rounds and JSON (no timing asserted)."""

import json

import numpy as np
import pytest

from tests.conftest import STANDARD_DIGITS_CONFIG, run_tool
from tests.tools.user_path_runs import tool_module


def test_both_autoattacks_on_the_same_images_with_alternating_rounds(
    standard_digits_checkpoint, tmp_path
):
    out = tmp_path / 'aa.json'
    # eps 64 breaks nearly every image within APGD-CE: both whole code paths
    # in seconds
    proc = run_tool(
        [
            'benchmarks/autoattack_speed.py',
            STANDARD_DIGITS_CONFIG,
            standard_digits_checkpoint,
            '--num-samples',
            '8',
            '--eps',
            '64',
            '--rounds',
            '2',
            '--threads',
            '1',
            '--out',
            out,
        ],
        timeout=600,
    )
    (row,) = json.loads(out.read_text())
    assert (row['num_samples'], row['eps'], row['rounds']) == (8, 64.0, 2)
    # the config runs channels-last; the reference only takes contiguous images
    assert row['plugin_layout'] == 'channels-last'
    assert len(row['round_ratios']) == 2 and row['ratio'] == float(np.median(row['round_ratios']))
    assert row['reference_seconds'] > 0 and row['plugin_seconds'] > 0
    # robust accuracy in steps of one image, never above clean; the images
    # broken by one implementation only account for the difference
    for key in ('reference_robust', 'plugin_robust'):
        images = row[key] * 8 / 100
        assert row[key] <= row['clean'] and abs(images - round(images)) < 1e-6
    assert row['plugin_robust'] - row['reference_robust'] == 100 / 8 * (
        row['broken_by_reference_only'] - row['broken_by_plugin_only']
    )
    assert f"ratio reference / plug-in {row['ratio']:.2f}" in proc.stdout


def test_an_odd_number_of_paths_is_refused(capsys):
    # its main in this process (the run above is the subprocess)
    tool = tool_module('benchmarks/autoattack_speed.py', 'autoattack_speed_tool')
    with pytest.raises(SystemExit) as info:
        tool.main([STANDARD_DIGITS_CONFIG])
    assert info.value.code == 2 and 'give CONFIG CHECKPOINT pairs' in capsys.readouterr().err
