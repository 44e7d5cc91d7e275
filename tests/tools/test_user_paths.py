"""Every tool in tools/ on a config of each family users have, at a tiny size.

The families (tests/tools/user_path_runs.py, each trained once per session):
``plain`` (resnet18-w16_1xb64_digits.py), ``pgd-at``
(resnet18-w16_1xb64_digits_pgdat.py), ``single-step`` (the FGSM-RS config
with the catastrophic-overfitting guard), ``nf`` (the NoFrost config
nf-resnet18-w16_1xb64_digits_pgdat.py) and ``stock`` (mmpretrain's own
lenet5_mnist.py plus the plug-in's keys). The matrix, with the cells other
files already walk (not repeated here):

=======================  ==============================  ================================
tool                     families here                   elsewhere
=======================  ==============================  ================================
train.py                 pgd-at single-step nf stock     plain: test_train_test_tools (its
                         (the shared runs)               checkpoint: the session's
                                                         standard_digits_checkpoint)
test.py                  pgd-at single-step nf stock     plain: test_train_test_tools,
                                                         test_robust_test_tool; stock:
                                                         test_stock_mmpretrain_config
dist_test.sh (2 ranks)   pgd-at single-step nf stock     plain: test_robust_test_tool,
                                                         reliability/test_distributed
dist_train.sh (2 ranks)  single-step stock               plain: test_nofrost_runner;
                                                         pgd-at: test_adversarial_training_
                                                         hook; nf: reliability/
                                                         test_distributed
robustness_report.py     pgd-at single-step nf stock     plain: test_robustness_report
decision_margin.py,      pgd-at single-step nf stock     plain: test_robust_test_tool
smoothness.py
signal_propagation.py    all five                        -
distribution_shift_      all five                        -
table.py
demo.py                  single-step                     plain pgd-at nf: test_demo (the
                                                         demo trains its own configs: no
                                                         stock row)
mnist_study.py           pgd-at + nf (one row: PGD-40    single-step: test_mnist_study
                         AT, NF)                         (no plain or stock row exists)
=======================  ==============================  ================================

The two-rank launchers are in test_user_paths_dist.py, the demo and the MNIST
study (which train their own configs) in test_user_paths_studies.py: three
files that test processes run side by side. tools/test.py and the analysis
tools run in this process (their ``main``, the same command line).
"""

import json
import re

import pytest
import torch

import nofrost_mm  # noqa: F401  (allow-lists the checkpoints' RNG states for torch.load)
from tests.tools.user_path_runs import (  # noqa: F401
    FAMILIES,
    GUARD_CHECK,
    one_process,
    run_main,
    tool_module,
    trained,
    user_path_folder,
)

ALL = list(FAMILIES)


def _attack_logged(log, eps):
    """Whether the log's config shows PGD-2 at ``eps`` (either dict layout)."""
    eps = f'{eps:g}'
    return (
        f"eps={eps}, steps=2, type='PGDAttack'" in log
        or f"'eps': {eps}, 'steps': 2, 'type': 'PGDAttack'" in log
    )


def _check_robust(res, num_samples=4):
    """Numbers of a robust evaluation that hold for any model."""
    assert res['robust/num_samples'] == num_samples
    clean = res['robust/clean']
    assert 0 <= res['robust/PGDAttack-2'] <= clean <= 100
    assert 0 <= res['robust/FGSM'] <= clean
    assert res['robust/worst_case'] <= min(res['robust/PGDAttack-2'], res['robust/FGSM'])


# --- train.py: the shared runs themselves ------------------------------------------------


@pytest.mark.parametrize('family', ['pgd-at', 'single-step', 'nf', 'stock'])
def test_train(trained, family):
    run = trained(family)
    ckpt = torch.load(run.checkpoint, weights_only=True)
    assert ckpt['meta']['epoch'] == 1
    assert 'optimizer' in ckpt and 'param_schedulers' in ckpt
    assert re.search(r'Epoch\(val\) \[1\]\[\d+/\d+\]\s+accuracy/top1: \d', run.log)
    # the training attack ran, and validation measured robustness
    assert re.search(r'adv_eps: \d', run.log)
    assert re.search(r'robust_accuracy/top1: \d', run.log)
    if family == 'single-step':  # the guard checked after the epoch
        assert re.search(GUARD_CHECK, run.log)


# --- test.py ----------------------------------------------------------------------------


@pytest.mark.parametrize('family', ['pgd-at', 'single-step', 'nf', 'stock'])
def test_test_tool(one_process, family):
    res, log = one_process(family)
    _check_robust(res)
    assert _attack_logged(log, FAMILIES[family].eps)  # the training eps, not a default
    assert 'metrics written to' in log


# --- the analysis tools ---------------------------------------------------------------------


@pytest.mark.parametrize('family', ['pgd-at', 'single-step', 'nf', 'stock'])
def test_robustness_report(trained, family, tmp_path):
    r = trained(family)
    out = tmp_path / 'report'
    main = tool_module('tools/analysis_tools/robustness_report.py', 'user_path_report').main
    # the eps is the config's training eps, the eps curve its default
    main(
        [
            str(r.config),
            str(r.checkpoint),
            '--out',
            str(out),
            '--num-samples',
            '4',
            '--pgd-steps',
            '1',
            '2',
            '--restarts',
            '2',
            '--apgd-steps',
            '2',
            '--square-queries',
            '0',
            '--autoattack',
            'none',
        ]
    )
    report = json.loads((out / 'report.json').read_text())
    assert report['settings']['eps'] == r.family.eps
    assert report['settings']['eps_source'] == "the configs' training attack"
    summary = report['models'][0]['summary']
    assert summary['num_samples'] == 4
    assert 0 <= summary['worst_case'] <= summary['clean'] <= 100
    assert set(summary['pgd']) == {'1', '2'}
    for png in ('accuracy_vs_steps.png', 'accuracy_vs_eps.png'):
        assert (out / png).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert r.config.stem in (out / 'report.md').read_text()


@pytest.mark.parametrize(
    'tool, radius, keys',
    [
        # the radius follows the training eps: twice it for the boundary search
        ('decision_margin', ('eps_max', 2), ('boundary_distance', 'logit_margin')),
        ('smoothness', ('eps', 1), ('input_grad_l1', 'local_lipschitz')),
    ],
    ids=['decision_margin', 'smoothness'],
)
@pytest.mark.parametrize('family', ['pgd-at', 'single-step', 'nf', 'stock'])
def test_margin_and_smoothness(trained, family, tool, radius, keys, tmp_path, monkeypatch, capsys):
    r = trained(family)
    png, js = tmp_path / f'{tool}.png', tmp_path / f'{tool}.json'
    run_main(
        monkeypatch,
        f'tools/analysis_tools/{tool}.py',
        [
            r.config,
            r.checkpoint,
            '--labels',
            family,
            '--num-samples',
            '4',
            '--batch-size',
            '4',
            '--steps',
            '2',
            '--out',
            png,
            '--json',
            js,
        ],
    )
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    result = json.loads(js.read_text())
    key, factor = radius
    assert result[key] == min(factor * r.family.eps, 255)
    for name in keys:
        assert result['models'][family][name]['n'] == 4
    assert f'{family}: ' in capsys.readouterr().out


@pytest.mark.parametrize('family', ALL)
def test_signal_propagation(trained, family, tmp_path, monkeypatch, capsys):
    config = trained(family).config
    argv = [
        config,
        '--out',
        tmp_path / 'spp.png',
        '--json',
        tmp_path / 'spp.json',
        '--img-size',
        '32',
        '--batch-size',
        '4',
    ]
    if family == 'stock':
        # LeNet-5 has no residual block to measure: a clear error, nothing drawn
        with pytest.raises(ValueError, match='LeNet5 has no residual blocks'):
            run_main(monkeypatch, 'tools/analysis_tools/signal_propagation.py', argv)
        assert not (tmp_path / 'spp.png').exists()
        return
    run_main(monkeypatch, 'tools/analysis_tools/signal_propagation.py', argv)
    results = json.loads((tmp_path / 'spp.json').read_text())
    # a BN net is drawn as built, without its BNs and converted; an NF net as built
    labels = (
        [config.stem] if family == 'nf' else [f'{config.stem} {v}' for v in ('BN', 'naive', 'NF')]
    )
    assert list(results) == labels
    for label in labels:
        assert len(results[label]['var']) == 8  # ResNet-18: 8 basic blocks
        assert all(v > 0 for v in results[label]['var'])
    assert (tmp_path / 'spp.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert 'plot saved' in capsys.readouterr().out


@pytest.mark.parametrize('family', ALL)
def test_distribution_shift_table(trained, family, tmp_path):
    """The table's first column on a config's own test set (the digits, MNIST:
    no ImageNet folder to give), with robust columns on 4 of its images."""
    r = trained(family)
    out = tmp_path / 'table'
    # PGD-2 at the training eps; the plain config has none: eps 8
    attack = "{'type': 'PGDAttack', 'steps': 2%s}" % ('' if r.family.eps else ", 'eps': 8")
    tool_module('tools/analysis_tools/distribution_shift_table.py', 'user_path_shift').main(
        [
            str(r.config),
            str(r.checkpoint),
            '--out',
            str(out),
            '--benchmarks',
            'imagenet',
            '--attacks',
            attack,
            '--num-samples',
            '4',
            '--batch-size',
            '8',
        ]
    )
    table = json.loads((out / 'distribution_shift.json').read_text())
    res = table['models'][0]['results']['imagenet']
    assert 0 <= res['clean'] <= 100
    assert res['robust_num_samples'] == 4
    assert 0 <= res['worst_case'] <= res['PGDAttack-2'] <= res['attacked_clean'] <= 100
    assert table['settings']['data_roots'] == 'imagenet=own test set'
    assert (out / 'distribution_shift.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
