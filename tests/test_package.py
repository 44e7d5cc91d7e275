from importlib import metadata

import pytest


def test_import_registers_components():
    from mmengine.registry import RUNNERS
    from mmpretrain.registry import DATASETS

    import nofrost_mm

    assert isinstance(nofrost_mm.__version__, str)
    assert DATASETS.get('SklearnDigits') is not None
    assert RUNNERS.get('NoFrostRunner') is not None


def test_version_check_names_the_bad_package(monkeypatch):
    from nofrost_mm.utils import version_check

    real_version = metadata.version

    def fake_version(name):
        if name == 'mmpretrain':
            return '1.0.0'
        return real_version(name)

    monkeypatch.setattr(version_check.metadata, 'version', fake_version)
    with pytest.raises(ImportError, match=r'mmpretrain==1\.0\.0.*>=1\.2\.0,<1\.3\.0'):
        version_check.check_dependency_versions()


def test_version_check_missing_package(monkeypatch):
    from nofrost_mm.utils import version_check

    def fake_version(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(version_check.metadata, 'version', fake_version)
    with pytest.raises(ImportError, match='mmcv is not installed'):
        version_check.check_dependency_versions()


def test_torchattacks_installed_without_bundled_robustbench():
    import importlib.util

    import torchattacks  # noqa: F401

    spec = importlib.util.find_spec('robustbench')
    if spec is not None:  # a real RobustBench is fine, torchattacks' copy is not
        metadata.version('robustbench')
    files = metadata.distribution('torchattacks').files or []
    assert not [f for f in files if str(f).startswith('robustbench/')]
