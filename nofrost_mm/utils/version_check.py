"""Fail early, with a clear message, on an OpenMMLab stack this plug-in was not built for."""

from importlib import metadata

from packaging.version import Version

# (distribution names, lowest allowed, first version not allowed)
SUPPORTED_RANGES = {
    'mmengine': (('mmengine', 'mmengine-lite'), '0.10.0', '1.0.0'),
    'mmcv': (('mmcv', 'mmcv-lite'), '2.0.0', '2.4.0'),
    'mmpretrain': (('mmpretrain',), '1.2.0', '1.3.0'),
}


def _installed_version(dist_names):
    for name in dist_names:
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None, None


def check_dependency_versions():
    """Raise ImportError naming every package outside its supported range."""
    problems = []
    for package, (dists, low, high) in SUPPORTED_RANGES.items():
        dist, version = _installed_version(dists)
        wanted = f'{package}>={low},<{high}'
        if version is None:
            problems.append(
                f'{package} is not installed (need {wanted}; one of: {", ".join(dists)})'
            )
        elif not Version(low) <= Version(version) < Version(high):
            problems.append(f'{dist}=={version} is installed, need {wanted}')
    if problems:
        raise ImportError(
            'nofrost_mm cannot run on this OpenMMLab stack:\n  - '
            + '\n  - '.join(problems)
            + '\nInstall the tested set with `make install` (see README.md).'
        )
