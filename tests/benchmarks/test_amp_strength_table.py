"""benchmarks/amp_strength_table.py runs end to end and prints its table (tiny sizes)."""

import pytest

from tests.conftest import STANDARD_DIGITS_CONFIG, run_tool
from tests.tools.user_path_runs import tool_module


def test_amp_strength_table_prints_each_row_and_what_it_ran_in(standard_digits_checkpoint):
    proc = run_tool(
        [
            'benchmarks/amp_strength_table.py',
            STANDARD_DIGITS_CONFIG,
            standard_digits_checkpoint,
            '--num-samples',
            '8',
            '--temps',
            '10',
            '--attacks',
            'PGD-10',
            'APGD-CE (20 it.)',
            '--precisions',
            'bf16',
            '--threads',
            '1',
        ],
        timeout=600,
        check=False,
    )
    rows = {
        line.split('|')[2].strip(): line.split('|')
        for line in proc.stdout.splitlines()
        if line.startswith('| 10 |')
    }
    assert set(rows) == {'PGD-10', 'APGD-CE (20 it.)'}, proc.stdout + proc.stderr
    assert rows['PGD-10'][4].strip().endswith('(bf16 (polish fp32))')
    assert rows['APGD-CE (20 it.)'][4].strip().endswith('(fp32)')
    for cells in rows.values():
        fp32, bf16 = float(cells[3]), float(cells[4].split()[0])
        assert 0 <= fp32 <= 100 and bf16 <= fp32 + 1
    assert proc.returncode == 0, proc.stderr


def test_amp_strength_table_refuses_an_unknown_attack(capsys):
    # its main in this process (the run above is the subprocess): refused
    # from the command line, before the checkpoint is read
    tool = tool_module('benchmarks/amp_strength_table.py', 'amp_strength_table_tool')
    with pytest.raises(SystemExit) as info:
        tool.main([STANDARD_DIGITS_CONFIG, 'x.pth', '--attacks', 'PGD-100'])
    assert info.value.code == 2 and "unknown ['PGD-100']" in capsys.readouterr().err
