"""tools/analysis_tools/robustness_report.py as a user runs it.

A plainly trained model (real SGD on the digits, inside the test) gets no
gradient-masking flag; the same weights behind a non-differentiable input
quantisation get flagged, from numbers the report computes. The adversarial
configs (PGD-AT, single-step with the catastrophic-overfitting guard, NF) and
a stock mmpretrain config with the plug-in's keys get the report's own
attacks, each stated with the settings it ran with.
"""

import importlib.util
import json
import sys

import pytest
import torch

from tests.attacks.toy import trained_classifier
from tests.conftest import REPO_ROOT, free_port, run_tool
from tests.reliability.helpers import finish_tools, run_meanwhile, start_tool

# the shared tiny runs of the config families users have, each trained once
# per session
from tests.tools.user_path_runs import trained, user_path_folder  # noqa: F401

TOOL = 'tools/analysis_tools/robustness_report.py'
DEMO = REPO_ROOT / 'configs/demo/resnet18-w16_1xb64_digits.py'
# the toy classifier of tests/attacks/toy.py, as a config of the demo (on
# the toy's 32 px digits; the demo's are 16 px)
PLAIN_CFG = f"""_base_ = [{str(DEMO)!r}]
model = dict(backbone=dict(stem_channels=8, base_channels=8),
             head=dict(in_channels=64))
val_dataloader = dict(dataset=dict(img_size=32))
test_dataloader = dict(dataset=dict(img_size=32))
"""
MASKED_CFG = """_base_ = ['./plain_digits.py']
custom_imports = dict(
    imports=['nofrost_mm', 'tests.evaluation.masked_classifier'],
    allow_failed_imports=False)
model = dict(type='QuantizedInputClassifier', step=0.25)
"""
# a small attack grid: every part of the report, a few seconds per model
SMALL = [
    '--num-samples',
    '24',
    '--pgd-steps',
    '5',
    '10',
    '--restarts',
    '2',
    '--apgd-steps',
    '10',
    '--square-queries',
    '200',
    '--eps-list',
    '8',
    '32',
    '128',
]


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    """Plain and masked configs sharing one briefly trained checkpoint."""
    folder = tmp_path_factory.mktemp('models')
    model = trained_classifier('bn', type='ImageClassifier')
    ckpt = folder / 'plain.pth'
    torch.save(dict(state_dict=model.state_dict(), meta={}), ckpt)
    plain = folder / 'plain_digits.py'
    plain.write_text(PLAIN_CFG)
    masked = folder / 'masked_digits.py'
    masked.write_text(MASKED_CFG)
    return plain, masked, ckpt


def test_flags_the_masked_model_not_the_plain_one(models, tmp_path):
    plain, masked, ckpt = models
    out = tmp_path / 'report'
    proc = run_tool(
        [
            TOOL,
            plain,
            ckpt,
            masked,
            ckpt,
            '--out',
            out,
            '--eps',
            '32',
            '--autoattack',
            'none',
            *SMALL,
        ]
    )
    report = json.loads((out / 'report.json').read_text())
    first, second = report['models']
    assert (first['name'], second['name']) == ('plain_digits', 'masked_digits')
    p, m = first['summary'], second['summary']
    assert p['num_samples'] == m['num_samples'] == 24
    # both classify the digits well above chance (10%), the quantisation
    # keeping the predictions; the briefly trained toy's accuracy itself
    # moves with the CPU's float path (46-80% seen)
    assert p['clean'] > 25 and m['clean'] > 25

    assert p['flags'] == [], p['flags']
    assert p['gradients']['zero'] == 0
    assert p['worst_case'] <= p['eps_curve']['8']
    assert p['eps_curve']['128'] == 0

    ids = {f['id'] for f in m['flags']}
    assert {'gradients', 'black_box'} <= ids, m['flags']
    assert m['gradients']['zero'] == m['gradients']['num_correct'] > 0
    black_box = next(f for f in m['flags'] if f['id'] == 'black_box')
    assert black_box['numbers']['black_box'] == 'Square-200'
    assert black_box['numbers']['only_black_box'] > 0
    # the white-box attacks see a flat model: Square breaks what they cannot
    square = m['attacks']['Square-200']['accuracy']
    assert m['attacks']['APGD-CE-10']['accuracy'] > square
    assert m['worst_case'] <= square
    assert set(m['pgd']) == {'5', '10'} and set(m['pgd']['10']) == {'1', '2'}

    md = (out / 'report.md').read_text()
    assert '**plain_digits**: no flag.' in md
    assert '**masked_digits**: ' in md and '`gradients`' in md
    assert f"{black_box['numbers']['black_box_acc']:.2f}%" in md
    for png in ('accuracy_vs_steps.png', 'accuracy_vs_eps.png'):
        data = (out / png).read_bytes()
        assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 20_000
    log = proc.stdout
    assert 'batch 1/1 > PGD-5: done in' in log  # progress while it runs
    assert 'FLAG masked_digits: [gradients]' in log
    assert 'FLAG plain_digits' not in log


def test_autoattack_and_two_processes_give_the_numbers_of_one(models, tmp_path, monkeypatch):
    plain, _, ckpt = models
    # at eps 4 some samples survive APGD-CE, so AutoAttack's other stages
    # run too
    args = [
        plain,
        ckpt,
        '--eps',
        '4',
        '--num-samples',
        '12',
        '--batch-size',
        '4',
        '--pgd-steps',
        '3',
        '--restarts',
        '2',
        '--apgd-steps',
        '5',
        '--square-queries',
        '20',
        '--autoattack-queries',
        '50',
        '--eps-list',
        '2',
        '8',
    ]
    # two processes, and meanwhile in this one (its main) the one-process run
    two = start_tool(
        [
            sys.executable,
            '-m',
            'torch.distributed.run',
            '--nproc_per_node',
            '2',
            '--master_port',
            free_port(),
            TOOL,
            *args,
            '--out',
            tmp_path / 'two',
            '--launcher',
            'pytorch',
        ]
    )
    run_meanwhile([two], monkeypatch, TOOL[len('tools/') :], [*args, '--out', tmp_path / 'one'])
    finish_tools([two])
    one = json.loads((tmp_path / 'one' / 'report.json').read_text())
    two = json.loads((tmp_path / 'two' / 'report.json').read_text())
    assert two['settings']['world_size'] == 2
    s1, s2 = one['models'][0]['summary'], two['models'][0]['summary']
    attacks = s1['attacks']
    # AutoAttack's stages: each keeps at most the survivors of the last
    stages = ['APGD-CE-5', 'AutoAttack/APGD-T', 'AutoAttack/FAB-T', 'AutoAttack']
    accs = [attacks[k]['accuracy'] for k in stages]
    assert accs == sorted(accs, reverse=True) and accs[0] > 0
    assert s1['per_sample'] == s2['per_sample']
    for key in ('clean', 'worst_case', 'pgd', 'eps_curve', 'gradients'):
        assert s1[key] == s2[key], key
    assert {k: v['accuracy'] for k, v in s1['attacks'].items()} == {
        k: v['accuracy'] for k, v in s2['attacks'].items()
    }


def _tool_main():
    spec = importlib.util.spec_from_file_location('robustness_report_tool', REPO_ROOT / TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.parametrize(
    'extra, error, match',
    [
        (['--attacks', 'NoSuchAttack'], KeyError, 'unknown attack type'),
        (['--attacks', "{'type': 'PGD', 'stepz': 3}"], TypeError, 'stepz'),
        (['--eps-list', '8', '300'], ValueError, r'300.0 is not in \(0, 255\]'),
        (['--eps-list', '8'], ValueError, 'at least 2 values'),
        (['--eps', '0'], ValueError, 'eps must be in'),
    ],
)
def test_bad_input_fails_before_any_model(models, tmp_path, extra, error, match):
    plain, _, ckpt = models
    out = tmp_path / 'out'
    with pytest.raises(error, match=match):
        _tool_main()([str(plain), str(ckpt), '--out', str(out), '--eps', '32', *extra])
    assert not out.exists()  # nothing built, nothing written


def test_missing_checkpoint_and_missing_eps(models, tmp_path):
    plain, _, ckpt = models
    main = _tool_main()
    with pytest.raises(FileNotFoundError, match='nope.pth: no such file'):
        main([str(plain), str(tmp_path / 'nope.pth'), '--out', str(tmp_path)])
    # a standard-training config has no attack to take the eps from
    with pytest.raises(ValueError, match='pass --eps'):
        main([str(plain), str(ckpt), '--out', str(tmp_path / 'out')])


def test_odd_number_of_paths_is_a_usage_error(models, tmp_path, capsys):
    plain, _, ckpt = models
    with pytest.raises(SystemExit) as exit_info:
        _tool_main()([str(plain), str(ckpt), str(plain), '--out', str(tmp_path / 'out')])
    assert exit_info.value.code == 2  # argparse's usage error
    assert 'models come in CONFIG CHECKPOINT pairs' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


# every part of the report at the smallest size: 4 samples, 2 steps
TINY = [
    '--num-samples',
    '4',
    '--pgd-steps',
    '2',
    '--restarts',
    '2',
    '--apgd-steps',
    '2',
    '--square-queries',
    '5',
    '--autoattack-queries',
    '5',
]
# the report's results at eps 32 with one more attack, in running order
REPORT_ATTACKS = [
    'PGD-2',
    'PGD-2x2',
    'APGD-CE-2',
    'APGD-DLR-2',
    'Square-5',
    'AutoAttack/APGD-T',
    'AutoAttack/FAB-T',
    'AutoAttack',
    'PGD',
]


def test_adversarial_training_configs_get_the_reports_attacks(trained, tmp_path, capsys):
    """PGD-AT, FGSM-RS with the catastrophic-overfitting guard and NoFrost's
    NF config in one report. Their test_attacks (PGD-20, AutoAttack) used to
    replace the report's attacks and metric when the runner was built: a
    report of the wrong attacks that crashed once they had run
    (AttributeError: 'RobustAccuracy' object has no attribute 'records')."""
    runs = [trained(name) for name in ('pgd-at', 'single-step', 'nf')]
    out = tmp_path / 'report'
    # `PGD`: torchattacks' PGD at the report's eps, by the plug-in's step rule
    _tool_main()(
        [str(p) for r in runs for p in (r.config, r.checkpoint)]
        + [
            '--out',
            str(out),
            '--attacks',
            'PGD',
            '--eps-list',
            '16',
            '32',
            *TINY,
            '--num-samples',
            '16',
        ]
    )
    report = json.loads((out / 'report.json').read_text())
    assert report['settings']['eps'] == 32
    assert [m['name'] for m in report['models']] == [r.config.stem for r in runs]
    for m in report['models']:
        s = m['summary']
        assert list(s['attacks']) == REPORT_ATTACKS, m['name']
        assert s['num_samples'] == 16 and 0 <= s['worst_case'] <= s['clean'] <= 100
        assert set(s['eps_curve']) == {'16', '32'}
        assert {p['sample_idx'] for p in s['per_sample']} == {
            p['sample_idx'] for p in report['models'][0]['summary']['per_sample']
        }
    # what each attack ran with, before the first one ran and in the report
    settings = report['plan']['settings']
    assert settings['PGD'] == dict(
        eps=32, step=pytest.approx(3.6), steps=10, restarts=1
    )  # min(1.25 eps, eps + 4) / 10
    assert settings['PGD-2'] == dict(eps=32, step=18, steps=2, restarts=2)
    printed = capsys.readouterr().out
    assert '  PGD (PGD): eps 32, step 3.6, 10 steps, 1 restart\n' in printed
    assert printed.index('attacks as run') < printed.index('[1/3]')
    page = (out / 'report.md').read_text()
    assert "| PGD | 32 | 3.6 | 10 | - | 1 | `{'type': 'PGD', 'eps': 32.0, 'alpha': 3.6}` |" in page


def test_a_stock_config_with_the_plugins_keys(trained, tmp_path, capsys):
    """mmpretrain's own lenet5_mnist.py plus the plug-in's keys, at its
    eps of 0.3 (76.5/255): bare names follow it with their steps."""
    r = trained('stock')
    out = tmp_path / 'report'
    _tool_main()(
        [
            str(r.config),
            str(r.checkpoint),
            '--out',
            str(out),
            '--attacks',
            'PGD',
            "{'type': 'BIM', 'steps': 5}",
            'FGSM',
            *TINY,
        ]
    )
    report = json.loads((out / 'report.json').read_text())
    assert report['settings']['eps'] == 76.5
    settings = report['plan']['settings']
    # torchattacks' 2/255 would travel 20 of the 76.5 in 10 steps
    assert settings['PGD'] == dict(eps=76.5, step=pytest.approx(8.05), steps=10, restarts=1)
    assert settings['BIM-5'] == dict(eps=76.5, step=pytest.approx(16.1), steps=5, restarts=1)
    assert settings['FGSM'] == dict(eps=76.5, restarts=1)
    summary = report['models'][0]['summary']
    assert {'PGD', 'BIM-5', 'FGSM'} <= set(summary['attacks'])
    assert 0 <= summary['worst_case'] <= summary['clean'] <= 100
    assert 'PGD (PGD): eps 76.5, step 8.05, 10 steps' in capsys.readouterr().out


def test_what_the_report_cannot_do_fails_before_any_attack(trained, tmp_path):
    at, stock = trained('pgd-at'), trained('stock')
    main = _tool_main()
    out = tmp_path / 'report'
    # the second model's test set (16 fake MNIST images) is too small: said
    # before the first model is attacked
    with pytest.raises(
        ValueError,
        match=r'--num-samples 20 is larger than the test '
        r'set of .*lenet5_mnist_fgsmrs\.py \(16 samples\)',
    ):
        main(
            [
                str(at.config),
                str(at.checkpoint),
                str(stock.config),
                str(stock.checkpoint),
                '--eps',
                '32',
                '--out',
                str(out),
                '--num-samples',
                '20',
            ]
        )
    assert not out.exists()
    # an earlier report is read back with --resume, never overwritten
    out.mkdir()
    (out / 'report.json').write_text('{"earlier": true}')
    with pytest.raises(FileExistsError, match='pass --resume'):
        main([str(at.config), str(at.checkpoint), '--out', str(out), *TINY])
    assert (out / 'report.json').read_text() == '{"earlier": true}'
    assert sorted(p.name for p in out.iterdir()) == ['report.json']
