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

The analysis tools that take ``main(argv)`` (or read ``sys.argv``) run in
this process: a second process would spend most of each test importing torch;
the command line is the same.
"""
import importlib.util
import json
import re
import sys

import pytest
import torch

import nofrost_mm  # noqa: F401  (allow-lists the checkpoints' RNG states for torch.load)
from tests.conftest import REPO_ROOT, free_port, run_tool
from tests.datasets.fake_mnist import write_fake_mnist
from tests.tools.user_path_runs import (FAMILIES, robust_results, trained,  # noqa: F401
                                        user_path_folder)

ALL = list(FAMILIES)
ADVERSARIAL = [name for name in ALL if FAMILIES[name].eps is not None]
# tools/test.py's cheapest robust evaluation: 4 images, PGD-2 and FGSM, both
# at the training eps (neither names one)
TEST_ARGS = ['--num-samples', '4', '--attacks', "{'type': 'PGDAttack', 'steps': 2}", 'FGSM']

# the catastrophic-overfitting guard's check, on its 8 images at the final eps
GUARD_CHECK = (r'CatastrophicOverfittingHook \(epoch 1\): clean [\d.]+%, PGD-5 [\d.]+%, '
               r'FGSM [\d.]+% on 8 held-out images at eps 32/255')


def _tool(path, name):
    """A tool script as a module (its main runs in this process)."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_main(monkeypatch, path, argv):
    """A tool whose ``main()`` reads ``sys.argv``, run here as from a shell."""
    module = _tool(path, f'user_path_{path.rsplit("/", 1)[-1][:-3]}')
    monkeypatch.setattr(sys, 'argv', [path] + [str(a) for a in argv])
    module.main()


def _attack_logged(log, eps):
    """Whether the log's config shows PGD-2 at ``eps`` (either dict layout)."""
    eps = f'{eps:g}'
    return (f"eps={eps}, steps=2, type='PGDAttack'" in log
            or f"'eps': {eps}, 'steps': 2, 'type': 'PGDAttack'" in log)


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


# --- test.py and dist_test.sh ---------------------------------------------------------------

@pytest.fixture(scope='module')
def one_process(trained, tmp_path_factory):
    """``one_process(name)``: tools/test.py's results and log file, run once a
    family (in this process, as from a shell)."""
    done = {}

    def run(name):
        if name not in done:
            r = trained(name)
            folder = tmp_path_factory.mktemp(f'test_{name}')
            with pytest.MonkeyPatch.context() as monkeypatch:
                _run_main(monkeypatch, 'tools/test.py', [
                    r.config, r.checkpoint, '--work-dir', folder,
                    '--out', folder / 'results.json', *TEST_ARGS])
            log, = folder.glob('*/*.log')
            done[name] = json.loads((folder / 'results.json').read_text()), log.read_text()
        return done[name]
    return run


@pytest.mark.parametrize('family', ['pgd-at', 'single-step', 'nf', 'stock'])
def test_test_tool(one_process, family):
    res, log = one_process(family)
    _check_robust(res)
    assert _attack_logged(log, FAMILIES[family].eps)  # the training eps, not a default
    assert 'metrics written to' in log


@pytest.mark.parametrize('family', ['pgd-at', 'single-step', 'nf', 'stock'])
def test_dist_test(trained, one_process, family, tmp_path):
    r = trained(family)
    proc = run_tool(['bash', 'tools/dist_test.sh', r.config, r.checkpoint, 2,
                     '--work-dir', tmp_path, '--out', tmp_path / 'two.json', *TEST_ARGS],
                    env={'PORT': str(free_port())})
    two = json.loads((tmp_path / 'two.json').read_text())
    # the seeded subset and the numbers do not depend on the number of processes
    assert robust_results(two) == robust_results(one_process(family)[0])
    assert 'Distributed launcher: pytorch' in proc.stdout + proc.stderr


# --- dist_train.sh --------------------------------------------------------------------------

# every rank writes its final weights (tests/engine/runner/dump_rank_weights.py)
DUMP_WEIGHTS = """_base_ = ['{base}']
custom_imports = dict(imports=['nofrost_mm', 'tests.engine.runner.dump_rank_weights'],
                      allow_failed_imports=False)
custom_hooks = [*_base_.custom_hooks, dict(type='DumpRankWeightsHook')]
"""


@pytest.mark.parametrize('family', ['single-step', 'stock'])
def test_dist_train(trained, family, tmp_path):
    r = trained(family)
    config = tmp_path / f'{r.config.stem}_dump.py'
    config.write_text(DUMP_WEIGHTS.format(base=r.config))
    work_dir = tmp_path / 'two'
    proc = run_tool(['bash', 'tools/dist_train.sh', config, 2, '--work-dir', work_dir,
                     '--cfg-options', *r.family.train_options],
                    env={'PORT': str(free_port())})
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log
    # the two batches of 16 of the one-process run, one on each rank
    assert 'Epoch(train) [1][2/2]' in r.log and 'Epoch(train) [1][1/1]' in log
    assert re.search(r'robust_accuracy/top1: \d', log)
    if family == 'single-step':  # the guard's numbers, summed over the ranks
        assert re.search(GUARD_CHECK, log)
    rank0, rank1 = (torch.load(work_dir / f'rank{i}_weights.pth') for i in (0, 1))
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    assert (work_dir / 'epoch_1.pth').is_file()


# --- the analysis tools ---------------------------------------------------------------------

@pytest.mark.parametrize('family', ['pgd-at', 'single-step', 'nf', 'stock'])
def test_robustness_report(trained, family, tmp_path):
    r = trained(family)
    out = tmp_path / 'report'
    main = _tool('tools/analysis_tools/robustness_report.py', 'user_path_report').main
    # the eps is the config's training eps, the eps curve its default
    main([str(r.config), str(r.checkpoint), '--out', str(out), '--num-samples', '4',
          '--pgd-steps', '1', '2', '--restarts', '2', '--apgd-steps', '2',
          '--square-queries', '0', '--autoattack', 'none'])
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


@pytest.mark.parametrize('tool, radius, keys', [
    # the radius follows the training eps: twice it for the boundary search
    ('decision_margin', ('eps_max', 2), ('boundary_distance', 'logit_margin')),
    ('smoothness', ('eps', 1), ('input_grad_l1', 'local_lipschitz'))],
    ids=['decision_margin', 'smoothness'])
@pytest.mark.parametrize('family', ['pgd-at', 'single-step', 'nf', 'stock'])
def test_margin_and_smoothness(trained, family, tool, radius, keys, tmp_path, monkeypatch,
                               capsys):
    r = trained(family)
    png, js = tmp_path / f'{tool}.png', tmp_path / f'{tool}.json'
    _run_main(monkeypatch, f'tools/analysis_tools/{tool}.py',
              [r.config, r.checkpoint, '--labels', family, '--num-samples', '4',
               '--batch-size', '4', '--steps', '2', '--out', png, '--json', js])
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
    argv = [config, '--out', tmp_path / 'spp.png', '--json', tmp_path / 'spp.json',
            '--img-size', '32', '--batch-size', '4']
    if family == 'stock':
        # LeNet-5 has no residual block to measure: a clear error, nothing drawn
        with pytest.raises(ValueError, match='LeNet5 has no residual blocks'):
            _run_main(monkeypatch, 'tools/analysis_tools/signal_propagation.py', argv)
        assert not (tmp_path / 'spp.png').exists()
        return
    _run_main(monkeypatch, 'tools/analysis_tools/signal_propagation.py', argv)
    results = json.loads((tmp_path / 'spp.json').read_text())
    # a BN net is drawn as built, without its BNs and converted; an NF net as built
    labels = [config.stem] if family == 'nf' else [
        f'{config.stem} {v}' for v in ('BN', 'naive', 'NF')]
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
    attack = "{'type': 'PGDAttack', 'steps': 2%s}" % (
        '' if r.family.eps else ", 'eps': 8")
    _tool('tools/analysis_tools/distribution_shift_table.py', 'user_path_shift').main([
        str(r.config), str(r.checkpoint), '--out', str(out), '--benchmarks', 'imagenet',
        '--attacks', attack, '--num-samples', '4', '--batch-size', '8'])
    table = json.loads((out / 'distribution_shift.json').read_text())
    res = table['models'][0]['results']['imagenet']
    assert 0 <= res['clean'] <= 100
    assert res['robust_num_samples'] == 4
    assert 0 <= res['worst_case'] <= res['PGDAttack-2'] <= res['attacked_clean'] <= 100
    assert table['settings']['data_roots'] == 'imagenet=own test set'
    assert (out / 'distribution_shift.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


# --- the demo and the MNIST study (they train their own configs) -------------------------

def test_demo_single_step(tmp_path):
    proc = run_tool(['tools/demo.py', '--quick', '--methods', 'BN-AT FGSM-RS',
                     '--work-dir', tmp_path], timeout=600)
    assert '| BN-AT FGSM-RS | 32 |' in proc.stdout
    summary = json.loads((tmp_path / 'summary.json').read_text())
    result = summary['methods']['BN-AT FGSM-RS']
    clean, pgd, autoattack, worst = (result[k]['mean'] for k in
                                     ('clean', 'pgd20', 'autoattack', 'worst_case'))
    assert 0 <= autoattack <= clean <= 100 and pgd <= clean
    assert worst <= min(pgd, autoattack)


def test_mnist_study_pgd_at_nf(tmp_path):
    """One row that is both a PGD-AT and a normalizer-free config."""
    data = tmp_path / 'mnist'
    write_fake_mnist(data, 300, 40)
    method = 'PGD-40 AT, NF'
    proc = run_tool(['tools/mnist_study.py', '--quick', '--no-autoattack', '--methods',
                     method, '--data-root', data, '--work-dir', tmp_path / 'study'],
                    timeout=600)
    assert f'| {method} | 20 | 1 |' in proc.stdout
    run, = json.loads((tmp_path / 'study' / 'summary.json').read_text())['rows'][method]
    assert run['config'] == 'configs/mnist/fast-at-cnn-nf_1xb100_mnist_pgdat.py'
    metrics = run['metrics']
    assert 0 <= metrics['robust/PGD-50x10'] <= metrics['robust/PGD-50'] \
        <= metrics['robust/clean'] <= 100
