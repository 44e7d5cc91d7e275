"""tools/demo.py --study dualbn / label-smoothing, and --run-dir resuming a study."""

import importlib.util
import json
import sys

import pytest
from mmengine.config import Config

from tests.conftest import REPO_ROOT


@pytest.fixture(scope='module')
def demo():
    spec = importlib.util.spec_from_file_location('demo_tool_dualbn', REPO_ROOT / 'tools/demo.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_three_way_and_label_smoothing_rows(demo, monkeypatch):
    monkeypatch.setattr(sys, 'argv', ['demo.py', '--study', 'dualbn', 'label-smoothing'])
    args = demo.parse_args()
    configs = dict(demo.ALL_METHODS)
    assert set(args.methods) == {
        'BN-AT',
        'NoFrost (NF-AT)',
        'BN-AT @48',
        'NoFrost (NF-AT) @48',
        'Dual-BN AT, clean branch',
        'Dual-BN AT, adv branch',
        'Dual-BN AT, clean branch @48',
        'Dual-BN AT, adv branch @48',
        'BN-AT LS 0.1',
        'NoFrost (NF-AT) LS 0.1',
    }
    # the two branches are one trained model, the adversarial one tested with
    # deploy_branch='adv'
    for suffix, eps in (('', 32), (' @48', 48)):
        clean, adv = (f'Dual-BN AT, {b} branch{suffix}' for b in ('clean', 'adv'))
        assert configs[clean] == configs[adv]
        assert clean not in demo.EVAL_OPTIONS
        assert demo.EVAL_OPTIONS[adv] == ['model.backbone.norm_cfg.deploy_branch=adv']
        cfg = Config.fromfile(str(REPO_ROOT / configs[clean]))
        assert cfg.model.backbone.norm_cfg == dict(type='DualBN', deploy_branch='clean')
        assert cfg.data_preprocessor.eps == eps == demo.method_eps(clean)
    # label smoothing 0.1 is the only change from the rows without it
    for name, base in (('BN-AT LS 0.1', 'BN-AT'), ('NoFrost (NF-AT) LS 0.1', 'NoFrost (NF-AT)')):
        smoothed = Config.fromfile(str(REPO_ROOT / configs[name]))
        plain = Config.fromfile(str(REPO_ROOT / configs[base]))
        assert smoothed.model.head.loss == dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original', loss_weight=1.0
        )
        smoothed.model.head.loss = plain.model.head.loss
        smoothed.pop('head_loss')  # the helper of configs/_base_/models/losses/
        assert smoothed.to_dict() == plain.to_dict()


def test_run_dir_reuses_finished_runs_and_the_table_names_partial_seeds(
    demo, monkeypatch, tmp_path
):
    calls = []

    def fake_run(name, config, seed, work_dir, trained, args):
        calls.append((name, seed))
        trained.setdefault(config, ('ckpt', 1.0, work_dir))
        value = 50.0 + seed
        return dict(
            seed=seed,
            eps=demo.method_eps(name),
            checkpoint='ckpt',
            train_seconds=1.0,
            train_dir=work_dir,
            test_options=[],
            clean=value,
            pgd20=value,
            autoattack=value,
            worst_case=value,
            autoattack_clean=value,
            pgd20_samples=360,
            autoattack_samples=100,
        )

    monkeypatch.setattr(demo, 'run_method', fake_run)
    monkeypatch.setattr(demo, 'plot', lambda *a, **k: None)
    monkeypatch.setattr(demo, 'read_curves', lambda *a, **k: {})
    run_dir = tmp_path / 'runs' / 'main'
    common = [
        'demo.py',
        '--work-dir',
        str(tmp_path),
        '--run-dir',
        str(run_dir),
        '--methods',
        'Dual-BN AT, clean branch',
        'Dual-BN AT, adv branch',
    ]
    monkeypatch.setattr(sys, 'argv', common + ['--seeds', '0'])
    demo.main()
    assert calls == [('Dual-BN AT, clean branch', 0), ('Dual-BN AT, adv branch', 0)]
    # a second run: seed 0 is read back, only seed 1 runs
    calls.clear()
    monkeypatch.setattr(sys, 'argv', common + ['--seeds', '0', '1'])
    demo.main()
    assert calls == [('Dual-BN AT, clean branch', 1), ('Dual-BN AT, adv branch', 1)]
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['methods']['Dual-BN AT, adv branch']['autoattack']['per_seed'] == [50.0, 51.0]
    assert '| Dual-BN AT, adv branch | 32 | 50.5 ± 0.7 |' in summary['table']
    # a study stopped early: --report-only tables what finished, each row
    # with its seeds, and runs nothing
    calls.clear()
    monkeypatch.setattr(sys, 'argv', common + ['--seeds', '0', '1', '2', '--report-only'])
    demo.main()
    assert calls == []
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert '| Dual-BN AT, adv branch (seeds 0, 1) | 32 | 50.5 ± 0.7 |' in summary['table']
    monkeypatch.setattr(sys, 'argv', ['demo.py', '--report-only'])
    with pytest.raises(SystemExit):
        demo.parse_args()


def test_a_killed_training_of_a_run_dir_resumes(demo, monkeypatch, tmp_path):
    commands = []

    def fake_run(cmd, log_path, show=None):
        commands.append(cmd)
        (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_15.pth'))

    monkeypatch.setattr(demo, 'run', fake_run)
    assert demo.train('cfg.py', str(tmp_path), 0, False)[0].endswith('epoch_15.pth')
    assert '--resume' not in commands[0]  # a fresh folder: a new training
    demo.train('cfg.py', str(tmp_path), 0, False)  # its checkpoints are there now
    assert '--resume' in commands[1]
