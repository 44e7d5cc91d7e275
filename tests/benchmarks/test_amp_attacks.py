"""benchmarks/amp_attacks.py runs end to end (tiny sizes; the times are not read)."""

from tests.conftest import run_tool

CONFIG = 'configs/demo/resnet18-w16_1xb64_digits_pgdat.py'


def test_amp_attacks_prints_both_rows(standard_digits_checkpoint):
    # the standard demo weights fit the PGD-AT config's model; at its eps 32
    # AutoAttack breaks the few images within APGD-CE
    proc = run_tool(
        [
            'benchmarks/amp_attacks.py',
            CONFIG,
            standard_digits_checkpoint,
            '--num-samples',
            '4',
            '--batch-size',
            '4',
            '--steps',
            '1',
            '--threads',
            '1',
        ],
        timeout=600,
    )
    out = proc.stdout
    assert '| PGD-1 AT iteration (batch 4) |' in out
    row = next(
        line for line in out.splitlines() if line.startswith('| AutoAttack standard (4 images) |')
    )
    fp32, bf16 = row.split('|')[5:7]
    assert float(bf16.split()[0]) <= float(fp32) + 1
    assert '(bf16 (apgd-ce, apgd-t, fab-t, square fp32))' in row
