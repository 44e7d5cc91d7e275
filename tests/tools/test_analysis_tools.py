"""decision_margin.py and smoothness.py on an adversarial-training config:
their radii follow the configs' training eps unless given."""

import importlib.util
import json
import sys

import pytest

from tests.conftest import REPO_ROOT

# the shared tiny runs of the config families users have, each trained once
# per session
from tests.tools.user_path_runs import trained, user_path_folder  # noqa: F401


def _run(monkeypatch, tool, argv):
    """``tools/analysis_tools/<tool>.py argv`` in this process."""
    path = REPO_ROOT / f'tools/analysis_tools/{tool}.py'
    spec = importlib.util.spec_from_file_location(f'analysis_{tool}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, 'argv', [str(path)] + [str(a) for a in argv])
    module.main()


@pytest.mark.parametrize(
    'tool, radius, printed',
    [
        # twice the eps: a robust model's distances lie around it
        ('decision_margin', dict(eps_max=64.0), 'eps-max 64/255'),
        ('smoothness', dict(eps=32.0), 'eps 32/255'),
    ],
)
def test_the_radius_is_the_training_eps_of_a_pgd_at_config(
    trained, tool, radius, printed, tmp_path, monkeypatch, capsys
):
    r = trained('pgd-at')  # PGD-AT at eps 32/255
    js = tmp_path / 'out.json'
    _run(
        monkeypatch,
        tool,
        [
            r.config,
            r.checkpoint,
            '--labels',
            'pgd-at',
            '--num-samples',
            '4',
            '--steps',
            '2',
            '--out',
            tmp_path / 'out.png',
            '--json',
            js,
        ],
    )
    summary = json.loads(js.read_text())
    assert {k: summary[k] for k in radius} == radius
    assert 'training eps' in summary['eps_source']
    assert all(v['n'] == 4 for v in summary['models']['pgd-at'].values())
    assert printed in capsys.readouterr().out


def test_configs_of_different_eps_need_the_radius(trained, tmp_path, monkeypatch):
    at, stock = trained('pgd-at'), trained('stock')  # eps 32 and 76.5
    with pytest.raises(ValueError, match='different eps .* pass --eps '):
        _run(
            monkeypatch,
            'smoothness',
            [at.config, at.checkpoint, stock.config, stock.checkpoint, '--out', tmp_path / 'o.png'],
        )
    assert not (tmp_path / 'o.png').exists()
