"""configs/*/metafile.yml (mmpretrain's model index format) name real configs,
and their parameter counts are those of the models the configs build."""

import pytest
import yaml
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

import nofrost_mm  # noqa: F401  (registers the plug-in's models)
from tests.conftest import REPO_ROOT

METAFILES = sorted(REPO_ROOT.glob('configs/*/metafile.yml'))
ENTRIES = [
    (path, model) for path in METAFILES for model in yaml.safe_load(path.read_text())['Models']
]


def test_the_benchmarks_have_metafiles():
    assert {p.parent.name for p in METAFILES} >= {'nofrost', 'mnist'}


@pytest.mark.parametrize(
    'path, model', ENTRIES, ids=[f'{p.parent.name}/{m["Name"]}' for p, m in ENTRIES]
)
def test_entry_names_a_config_and_its_parameter_count(path, model):
    collections = {c['Name'] for c in yaml.safe_load(path.read_text())['Collections']}
    assert model['In Collection'] in collections
    config = REPO_ROOT / model['Config']
    assert config.is_file() and config.parent == path.parent
    assert model['Name'] == config.stem
    for result in model.get('Results') or []:
        assert result['Task'] == 'Image Classification'
        assert all(0 <= value <= 100 for value in result['Metrics'].values())
    cfg = Config.fromfile(str(config))
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    built = MODELS.build(cfg.model)
    assert model['Metadata']['Parameters'] == sum(p.numel() for p in built.parameters())
