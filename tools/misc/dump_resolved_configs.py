"""Dump the effective settings of every shipped config as flat key paths.

``tests/configs/test_config_resolution.py`` compares the configs with the
fixture this writes (``tests/configs/fixtures/resolved_configs.json``), so a
refactor of the config tree cannot silently change an eps, a loss weight or
a schedule. Regenerate it only for an intended change of settings::

    python tools/misc/dump_resolved_configs.py > tests/configs/fixtures/resolved_configs.json
"""

import glob
import json
import os.path as osp
import sys

from mmengine.config import Config

import nofrost_mm  # noqa: F401 (registers the components configs name)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def leaf_configs(root: str = ROOT) -> list:
    """Every shipped config (the files under configs/ outside _base_)."""
    paths = glob.glob(osp.join(root, 'configs', '**', '*.py'), recursive=True)
    return sorted(osp.relpath(p, root) for p in paths if '_base_' not in p.split(osp.sep))


def _name(item) -> str:
    # list entries are named by their type (hooks, attacks), else by index
    if isinstance(item, dict) and 'type' in item:
        return str(item.get('name', item['type']))
    return None


def flatten(value, prefix: str = '') -> dict:
    """``{'a.b[PGDAttack].eps': 32, ...}`` for nested dicts and lists."""
    out = {}
    if isinstance(value, dict):
        if not value and prefix:
            out[prefix] = {}
        for key in sorted(value):
            out.update(flatten(value[key], f'{prefix}.{key}' if prefix else str(key)))
    elif isinstance(value, (list, tuple)) and any(isinstance(v, dict) for v in value):
        names = [_name(v) or str(i) for i, v in enumerate(value)]
        for i, (name, item) in enumerate(zip(names, value)):
            # repeated names (two hooks of one type) keep their index
            name = name if names.count(name) == 1 else f'{name}#{i}'
            out.update(flatten(item, f'{prefix}[{name}]'))
        if not value:
            out[prefix] = []
    else:
        out[prefix] = list(value) if isinstance(value, tuple) else value
    return out


def resolve(path: str) -> dict:
    """Flat effective settings of one config file."""
    cfg = Config.fromfile(osp.join(ROOT, path))
    return flatten(cfg.to_dict())


def main() -> None:
    json.dump(
        {path: resolve(path) for path in leaf_configs()},
        sys.stdout,
        indent=1,
        sort_keys=True,
        default=repr,
    )
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
