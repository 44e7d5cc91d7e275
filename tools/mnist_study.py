"""The MNIST study at L-inf eps 0.3: our rows beside the published ones.

Trains each chosen config of ``configs/mnist/`` (``tools/train.py``), then
evaluates it with ``tools/test.py`` (the configs' test attacks: PGD-50 with
step 0.01 and 10 restarts, AutoAttack standard; clean accuracy on the same
images): every row and seed on a fixed seeded subset (``--num-samples``, the
same images for every row, so rows compare), and the reproduction rows of
the first ``--full-test-seeds`` seeds on the full 10k test set as well. It
writes ``table.md`` (published rows first; every number with its 95% Wilson
interval over the evaluated images, or mean +- std over seeds; training time
on this machine) and ``summary.json`` to ``--work-dir`` (every run's results, and
per row and column ``{"mean", "std", "n_seeds", "per_seed"}``, std null for one
seed).

Everything is resumable: run folders are fixed (``{method}_seed{seed}``), a
finished training (``train_seconds.json``) or evaluation (``test_*.json``)
is not repeated, and an evaluation killed halfway continues from its
per-batch results (``tools/test.py --resume``). Needs the MNIST files
(``python tools/dataset_converters/prepare_mnist.py``).

Usage:
    python tools/mnist_study.py [--methods NAME ...] [--seeds 0 1 2]
        [--num-samples 1000] [--full-test-seeds 1] [--work-dir work_dirs/mnist_study]
        [--no-autoattack] [--subset-only] [--data-root DIR] [--quick]
"""

import argparse
import json
import math
import os
import os.path as osp
import platform
import re
import shlex
import subprocess
import sys
import time

from mmengine.config import Config

from nofrost_mm.utils.studies import run_logged as run
from nofrost_mm.utils.studies import seed_stats

# Croce & Hein 2020 (AutoAttack), MNIST eps 0.3, full test set: clean / AA
PUBLISHED = [
    ('Madry et al. 2018 (PGD-40 AT), published', 98.53, 88.50),
    ('TRADES (SmallCNN), published', 99.48, 92.81),
    ('Wong et al. 2020 (FGSM-RS), published', 98.50, 82.93),
]
# (name, config, reproduction of a published row: also evaluated on the
# full test set)
METHODS = [
    (
        'FGSM-RS (Wong et al. net and recipe)',
        'configs/mnist/fast-at-cnn_1xb100_mnist_fgsmrs.py',
        True,
    ),
    (
        'PGD-40 AT, CPU-sized (Wong et al. net, 10 epochs)',
        'configs/mnist/fast-at-cnn_1xb100_mnist_pgdat.py',
        False,
    ),
    (
        'FGSM-RS, eps warm-up (Wong et al. net)',
        'configs/mnist/fast-at-cnn_1xb100_mnist_fgsmrs-warmup.py',
        False,
    ),
    ('N-FGSM (Wong et al. net)', 'configs/mnist/fast-at-cnn_1xb100_mnist_nfgsm.py', False),
    (
        'N-FGSM, noise eps (Wong et al. net)',
        'configs/mnist/fast-at-cnn_1xb100_mnist_nfgsm-k1.py',
        False,
    ),
    ('FGSM-RS, BN', 'configs/mnist/fast-at-cnn-bn_1xb100_mnist_fgsmrs.py', False),
    ('FGSM-RS, NF', 'configs/mnist/fast-at-cnn-nf_1xb100_mnist_fgsmrs.py', False),
    ('PGD-40 AT, BN', 'configs/mnist/fast-at-cnn-bn_1xb100_mnist_pgdat.py', False),
    ('PGD-40 AT, NF', 'configs/mnist/fast-at-cnn-nf_1xb100_mnist_pgdat.py', False),
    (
        'PGD-40 AT, dual BN (mixed loss, adversarial branch)',
        'configs/mnist/fast-at-cnn-dualbn_1xb100_mnist_pgdat.py',
        False,
    ),
    # GPU recipes (days on 2 CPU cores): only when asked for
    (
        'PGD-40 AT (Madry et al. net and recipe)',
        'configs/mnist/madry-cnn_1xb50_mnist_pgdat.py',
        True,
    ),
    ('TRADES (SmallCNN, repository recipe)', 'configs/mnist/smallcnn_1xb128_mnist_trades.py', True),
]
GPU_RECIPES = ('PGD-40 AT (Madry et al. net and recipe)', 'TRADES (SmallCNN, repository recipe)')
DEFAULT_METHODS = [m for m, _, _ in METHODS if m not in GPU_RECIPES]
FULL_TEST = ', full test set'  # suffix of a reproduction row's 10k-image row
# result keys of tools/test.py -> table columns
COLUMNS = [
    ('robust/clean', 'clean'),
    ('robust/PGD-50x10', 'PGD-50x10'),
    ('robust/AutoAttack', 'AutoAttack'),
    ('robust/worst_case', 'worst case'),
]
QUICK_TRAIN = [
    'train_cfg.max_epochs=1',
    'train_dataloader.dataset.indices=200',
    'val_dataloader.dataset.indices=100',
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    names = [m for m, _, _ in METHODS]
    parser.add_argument(
        '--methods',
        nargs='+',
        default=DEFAULT_METHODS,
        help=f'rows to run (default: the first {len(DEFAULT_METHODS)}); allowed: {names}',
    )
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument(
        '--num-samples',
        type=int,
        default=1000,
        help='fixed seeded test subset of every row and seed (default 1000)',
    )
    parser.add_argument(
        '--full-test-seeds',
        type=int,
        default=1,
        help='how many of the seeds (the first ones) evaluate '
        'the reproduction rows on the full 10k test set too '
        '(default 1: AutoAttack takes ~1 h a seed on 2 cores)',
    )
    parser.add_argument(
        '--subset-only',
        action='store_true',
        help='no full-test-set evaluation (--full-test-seeds 0)',
    )
    parser.add_argument(
        '--no-autoattack',
        action='store_true',
        help='PGD-50 x 10 only (AutoAttack: ~8,000 passes per robust image)',
    )
    parser.add_argument('--work-dir', default='work_dirs/mnist_study')
    parser.add_argument(
        '--data-root',
        default=None,
        help="a folder with the four MNIST IDX files instead of the configs' data/mnist",
    )
    parser.add_argument(
        '--quick', action='store_true', help='1 epoch on 200 images, 20 test images: a smoke run'
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.methods) - set(names))
    if unknown:
        parser.error(f'--methods {unknown}: allowed {names}')
    if args.num_samples < 1:
        parser.error('--num-samples must be >= 1')
    if args.full_test_seeds < 0:
        parser.error('--full-test-seeds must be >= 0')
    if args.quick:
        args.num_samples, args.subset_only = 20, True
    if args.subset_only:
        args.full_test_seeds = 0
    return args


def attacks(config, no_autoattack):
    """``--attacks`` for tools/test.py: None runs the config's own test
    attacks; with ``no_autoattack`` the config's attacks but AutoAttack. Every
    attack keeps the config's eps (its preprocessor's), written once there."""
    if not no_autoattack:
        return None
    listed = Config.fromfile(config).test_attacks
    return [a for a in listed if a.get('type', a.get('attack', {}).get('type')) != 'AutoAttack']


def data_options(data_root):
    if data_root is None:
        return []
    return [
        f'{loader}.dataset.data_root={data_root}'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]


def train(config, work_dir, seed, quick, data_root=None):
    """Train once; the wall time is kept beside the checkpoints."""
    record = osp.join(work_dir, 'train_seconds.json')
    if osp.isfile(record):
        with open(record) as f:
            return json.load(f)
    os.makedirs(work_dir, exist_ok=True)
    start = time.time()
    run(
        [
            'tools/train.py',
            config,
            '--work-dir',
            work_dir,
            '--resume',
            '--cfg-options',
            f'randomness.seed={seed}',
            *(QUICK_TRAIN if quick else []),
            *data_options(data_root),
        ],
        osp.join(work_dir, 'train_console.log'),
        show=lambda line: 'Epoch(' in line or 'CatastrophicOverfitting' in line,
    )
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        result = dict(checkpoint=f.read().strip(), seconds=time.time() - start)
    with open(record, 'w') as f:
        json.dump(result, f)
    return result


def evaluate(config, checkpoint, work_dir, num_samples, no_autoattack, data_root=None):
    """tools/test.py once per (subset, attacks); a killed run resumes."""
    tag = 'full' if num_samples is None else f'n{num_samples}'
    tag += '_pgd' if no_autoattack else ''
    out = osp.join(work_dir, f'test_{tag}.json')
    if not osp.isfile(out):
        cmd = [
            'tools/test.py',
            config,
            checkpoint,
            '--work-dir',
            osp.join(work_dir, f'test_{tag}'),
            '--out',
            out,
            '--resume',
        ]
        chosen = attacks(config, no_autoattack)
        if chosen is not None:
            cmd += ['--attacks', *[repr(dict(a)) for a in chosen]]
        if num_samples is not None:
            cmd += ['--num-samples', str(num_samples)]
        if data_root is not None:
            cmd += ['--cfg-options', *data_options(data_root)]
        run(cmd, osp.join(work_dir, f'test_{tag}_console.log'), show=lambda line: 'robust/' in line)
    with open(out) as f:
        return json.load(f)


def wilson(percent, n, z=1.96):
    """95% Wilson score interval (in %) of an accuracy over n images."""
    p = percent / 100.0
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half)


def row_stats(runs):
    """Per column of the table (and the training time), the row's
    statistics over seeds (:func:`nofrost_mm.utils.studies.seed_stats`)."""
    stats = {key: seed_stats([r['metrics'].get(key) for r in runs]) for key, _ in COLUMNS}
    stats['train_seconds'] = seed_stats([r['train_seconds'] for r in runs])
    return stats


def cell(stats, n):
    """Mean ± std over seeds, or one seed's value with its 95% Wilson
    interval over the ``n`` test images."""
    if stats['mean'] is None:
        return '-'
    if stats['std'] is not None:
        return f"{stats['mean']:.2f} ± {stats['std']:.2f}"
    low, high = wilson(stats['mean'], n)
    return f"{stats['mean']:.2f} [{low:.1f}, {high:.1f}]"


def per_seed(stats):
    """'79.9 / 16.3 / 10.7': one value per seed, in the seeds' order (a mean
    over seeds hides whether one run collapsed)."""
    values = stats['per_seed']
    if len(values) < 2 or any(v is None for v in values):
        return '-'
    return ' / '.join(f'{v:.1f}' for v in values)


def table(rows):
    lines = [
        '| method | test images | seeds | clean (%) | PGD-50x10 (%) '
        '| AutoAttack (%) | worst case (%) | AutoAttack per seed (%) '
        '| train time (s) |',
        '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ]
    for name, clean, aa in PUBLISHED:
        lines.append(f'| {name} | 10000 | - | {clean:.2f} | - | {aa:.2f} | - | - | - |')
    for name, runs in rows.items():
        n = runs[0]['num_samples']
        stats = row_stats(runs)
        cells = [cell(stats[key], n) for key, _ in COLUMNS]
        lines.append(
            f'| {name} | {n} | {len(runs)} | '
            + ' | '.join(cells)
            + f" | {per_seed(stats['robust/AutoAttack'])} "
            f"| {stats['train_seconds']['mean']:.0f} |"
        )
    return '\n'.join(lines)


def cpu_model():
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
        return re.search(r'Model name:\s*(.+)', out).group(1).strip()
    except Exception:  # lscpu missing or unparsable: the platform string
        return platform.processor() or platform.machine()


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    rows = {}
    for name, config, reproduction in METHODS:
        if name not in args.methods:
            continue
        for index, seed in enumerate(args.seeds):
            slug = re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')
            work_dir = osp.join(args.work_dir, f'{slug}_seed{seed}')
            print(f'\n==> [{name}, seed {seed}] {config}', flush=True)
            trained = train(config, work_dir, seed, args.quick, args.data_root)
            # the subset first, so that the rows' comparison does not wait
            # for the full test set's hour of AutoAttack; the full test set's
            # row is listed first
            tests = [(name, args.num_samples)]
            if reproduction and index < args.full_test_seeds:
                tests.append((name + FULL_TEST, None))
                rows.setdefault(name + FULL_TEST, [])
            for row, num_samples in tests:
                metrics = evaluate(
                    config,
                    trained['checkpoint'],
                    work_dir,
                    num_samples,
                    args.no_autoattack,
                    args.data_root,
                )
                rows.setdefault(row, []).append(
                    dict(
                        seed=seed,
                        config=config,
                        train_seconds=trained['seconds'],
                        checkpoint=trained['checkpoint'],
                        metrics=metrics,
                        num_samples=metrics['robust/num_samples'],
                    )
                )
    summary = dict(
        command=shlex.join(
            ['python', 'tools/mnist_study.py'] + [str(a) for a in (argv or sys.argv[1:])]
        ),
        date=time.strftime('%Y-%m-%d'),
        cpu=cpu_model(),
        cores=os.cpu_count(),
        threads=os.environ.get('OMP_NUM_THREADS'),
        quick=args.quick,
        published=PUBLISHED,
        rows=rows,
        stats={name: row_stats(runs) for name, runs in rows.items()},
        table=table(rows),
    )
    with open(osp.join(args.work_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    with open(osp.join(args.work_dir, 'table.md'), 'w') as f:
        f.write(summary['table'] + '\n')
    print(
        f'\nMNIST, L-inf eps 0.3 ({summary["date"]}, {summary["cpu"]}, '
        f'{summary["cores"]} cores{", QUICK smoke run" if args.quick else ""}); '
        '[95% Wilson interval over the test images], or mean ± std over seeds:\n'
    )
    print(summary['table'])
    print(f'\nwrote {osp.join(args.work_dir, "table.md")} and summary.json')


if __name__ == '__main__':
    main()
