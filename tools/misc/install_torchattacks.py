"""Install torchattacks without its stale pins and without its bundled ``robustbench``.

torchattacks 3.5.1 pins ``requests~=2.25.1`` (a downgrade; torchattacks never imports
requests) and its wheel ships a top-level ``robustbench`` package that would shadow a real
RobustBench installation. This script installs it with ``--no-deps`` and removes the
``robustbench`` files the torchattacks wheel brought (and only those: files are taken from
torchattacks' RECORD), and puts back a real RobustBench if one was installed before.

Usage: python tools/misc/install_torchattacks.py [VERSION]
"""

import csv
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from importlib import metadata
from pathlib import Path


def _real_robustbench_version():
    try:
        return metadata.version('robustbench')
    except metadata.PackageNotFoundError:
        return None


def main():
    version = sys.argv[1] if len(sys.argv) > 1 else '3.5.1'
    pip = [sys.executable, '-m', 'pip', 'install', '--quiet']
    real = _real_robustbench_version()
    backup = None
    real_dir = Path(sysconfig.get_paths()['purelib']) / 'robustbench'
    if real is not None and real_dir.is_dir():
        # the torchattacks wheel would overwrite a real RobustBench: keep a copy
        backup = Path(tempfile.mkdtemp()) / 'robustbench'
        shutil.copytree(real_dir, backup)
    subprocess.check_call(pip + ['--no-deps', f'torchattacks=={version}'])

    dist = metadata.distribution('torchattacks')
    record = Path(dist._path) / 'RECORD'  # noqa: SLF001 (pip's documented layout)
    site = Path(dist.locate_file(''))
    kept, removed = [], 0
    with open(record, newline='') as f:
        for row in csv.reader(f):
            if row and row[0].startswith('robustbench/'):
                path = site / row[0]
                if path.exists():
                    path.unlink()
                    removed += 1
            else:
                kept.append(row)
    with open(record, 'w', newline='') as f:
        csv.writer(f).writerows(kept)
    # drop the now empty package folders the wheel created
    for folder in sorted((site / 'robustbench').glob('**/'), reverse=True):
        if folder.is_dir() and not any(p for p in folder.iterdir() if p.name != '__pycache__'):
            subprocess.call(['rm', '-rf', str(folder)])
    if backup is not None:
        shutil.rmtree(site / 'robustbench', ignore_errors=True)
        shutil.copytree(backup, site / 'robustbench')
        shutil.rmtree(backup.parent)
    print(
        f'torchattacks {version} installed without dependencies; '
        f'removed {removed} bundled robustbench files'
    )


if __name__ == '__main__':
    main()
