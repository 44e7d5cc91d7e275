"""Training time of single-step AT against PGD-K AT, side by side.

Issue 13's first acceptance: N-FGSM AT trains the demo BN and NF models in at
most half the wall time of their PGD-5 AT configs. This script trains each
pair of configs with ``tools/train.py`` (the command a user runs: process
start, data, every iteration, validation, checkpoints, hooks) in alternating
order (ABBA over rounds, so a machine that drifts slows both sides alike)
and prints per pair:

- ``training`` (the acceptance's measure, target <= 0.5): the single-step
  run's seconds over the baseline's from the moment training starts
  (mmengine's CheckpointHook logs it in ``before_train``) to the process's
  exit: every iteration, validation, checkpoint and guard check (median of
  the per-round ratios). What precedes it (interpreter, imports of torch /
  torchvision / mmpretrain, the config and the runner, ~4 s on the 2-core
  CPU) costs every method the same seconds and is not training;
- ``wall``: the same ratio for the whole process, start-up included (on the
  demo's short schedule those ~4 s alone move it by ~0.03-0.05);
- ``iterations``: the same for the training iterations alone (mean logged
  iteration time x iterations; what a long schedule tends to);
- the seconds of each run and what is neither (start-up, validation,
  checkpoints, the catastrophic-overfitting guard).

Nothing else should run on the machine meanwhile.

Example:
    python benchmarks/train_wall_time.py                  # the demo pairs, 2 rounds
    python benchmarks/train_wall_time.py --rounds 1 --cfg-options train_cfg.max_epochs=3
"""

import argparse
import collections
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_PAIRS = [
    (
        'configs/demo/resnet18-w16_1xb64_digits_pgdat.py',
        'configs/demo/resnet18-w16_1xb64_digits_nfgsm.py',
    ),
    (
        'configs/demo/nf-resnet18-w16_1xb64_digits_pgdat.py',
        'configs/demo/nf-resnet18-w16_1xb64_digits_nfgsm.py',
    ),
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--pair',
        nargs=2,
        action='append',
        metavar=('BASELINE', 'CANDIDATE'),
        help='two configs to compare (repeatable); default: the demo '
        'BN and NF PGD-5 configs against their N-FGSM ones',
    )
    parser.add_argument(
        '--rounds', type=int, default=2, help='runs of each config (alternating order)'
    )
    parser.add_argument(
        '--work-dir',
        default=None,
        help='where the runs train (default: a temporary folder, removed)',
    )
    parser.add_argument(
        '--cfg-options', nargs='+', default=[], help='passed to every tools/train.py run'
    )
    parser.add_argument('--json', default=None, help='write the numbers here')
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error('--rounds must be >= 1')
    args.pair = args.pair or DEMO_PAIRS
    for pair in args.pair:
        for config in pair:
            if not (REPO_ROOT / config).is_file() and not osp.isfile(config):
                parser.error(f'--pair: config {config} not found')
    return args


def iteration_seconds(work_dir: str) -> float:
    """Mean logged iteration time x the number of training iterations."""
    times, last_iter = [], 0
    for root, _, files in os.walk(work_dir):
        if 'scalars.json' in files and 'vis_data' in root:
            with open(osp.join(root, 'scalars.json')) as f:
                for line in f:
                    record = json.loads(line)
                    if 'loss' in record and 'time' in record:
                        times.append(record['time'])
                        last_iter = max(last_iter, record['iter'])
    if not times:
        raise RuntimeError(f'no logged training iterations under {work_dir}')
    return statistics.mean(times) * last_iter


# mmengine's CheckpointHook logs this in before_train: the runner is built
# and training starts (what precedes it is process start-up, imports, the
# config and the runner, the same for every method)
TRAIN_START_MARK = 'Checkpoints will be saved to'
# issue 13: a single-step run trains in at most half a PGD-5 run's time
TARGET_RATIO = 0.5


def train(config: str, work_dir: str, cfg_options) -> dict:
    cmd = [sys.executable, 'tools/train.py', config, '--work-dir', work_dir]
    if cfg_options:
        cmd += ['--cfg-options', *cfg_options]
    # this checkout's package, not whichever one pip installed in the venv
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    start = time.perf_counter()
    startup = None
    tail = collections.deque(maxlen=60)
    with subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as proc:
        for line in proc.stdout:
            if startup is None and TRAIN_START_MARK in line:
                startup = time.perf_counter() - start
            tail.append(line)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f'{" ".join(cmd)} failed ({proc.returncode}):\n{"".join(tail)[-3000:]}')
    if startup is None:
        raise RuntimeError(
            f'{" ".join(cmd)}: no "{TRAIN_START_MARK}" line in its log (is the CheckpointHook off?)'
        )
    iters = iteration_seconds(work_dir)
    return dict(
        wall=wall, startup=startup, training=wall - startup, iterations=iters, rest=wall - iters
    )


def main(argv=None):
    args = parse_args(argv)
    root = args.work_dir or tempfile.mkdtemp(prefix='train_wall_time_')
    os.makedirs(root, exist_ok=True)
    runs = {pair: {c: [] for c in pair} for pair in map(tuple, args.pair)}
    # ABBA: round r runs each pair in order, round r + 1 reversed
    schedule = [
        (r, pair, config, osp.join(root, f'{Path(config).stem}_round{r}'))
        for r in range(args.rounds)
        for pair in runs
        for config in (pair if r % 2 == 0 else pair[::-1])
    ]
    if len({w for *_, w in schedule}) < len(schedule):
        raise SystemExit('--pair: the configs of a run must have different file names')
    for *_, work_dir in schedule:  # before any training
        if osp.exists(work_dir):
            raise SystemExit(
                f'--work-dir: {work_dir} exists; give an empty '
                'folder (earlier runs are never overwritten)'
            )
    for r, pair, config, work_dir in schedule:
        res = train(config, work_dir, args.cfg_options)
        runs[pair][config].append(res)
        print(
            f'round {r}: {Path(config).stem}: {res["wall"]:.1f} s (start-up '
            f'{res["startup"]:.1f} s, training {res["training"]:.1f} s; iterations '
            f'{res["iterations"]:.1f} s, rest {res["rest"]:.1f} s)',
            flush=True,
        )
    summary = []
    print(
        '\n| baseline | candidate | training ratio (median) | per round '
        '| wall ratio (median) | per round | iterations ratio '
        '| start-up s (baseline / candidate) '
        '| baseline s (iter / rest) | candidate s (iter / rest) |'
    )
    print('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    verdicts = []
    for (base, cand), res in runs.items():
        pairs = list(zip(res[base], res[cand]))
        wall = [c['wall'] / b['wall'] for b, c in pairs]
        iters = [c['iterations'] / b['iterations'] for b, c in pairs]
        training = [c['training'] / b['training'] for b, c in pairs]

        def seconds(rs):
            return (
                f'{statistics.median(r["wall"] for r in rs):.1f} '
                f'({statistics.median(r["iterations"] for r in rs):.1f} / '
                f'{statistics.median(r["rest"] for r in rs):.1f})'
            )

        print(
            f'| {Path(base).stem} | {Path(cand).stem} '
            f'| {statistics.median(training):.3f} | {" / ".join(f"{t:.3f}" for t in training)} '
            f'| {statistics.median(wall):.3f} | {" / ".join(f"{w:.3f}" for w in wall)} '
            f'| {statistics.median(iters):.3f} '
            f'| {statistics.median(r["startup"] for r in res[base]):.1f} / '
            f'{statistics.median(r["startup"] for r in res[cand]):.1f} '
            f'| {seconds(res[base])} | {seconds(res[cand])} |'
        )
        met = statistics.median(training) <= TARGET_RATIO
        verdicts.append(
            f'{Path(cand).stem} / {Path(base).stem}: training ratio '
            f'{statistics.median(training):.3f} (rounds {min(training):.3f}-'
            f'{max(training):.3f}) {"<=" if met else ">"} {TARGET_RATIO}: '
            f'{"met" if met else "NOT met"}'
        )
        summary.append(
            dict(
                baseline=base,
                candidate=cand,
                wall_ratio=statistics.median(wall),
                wall_ratios=wall,
                training_ratio=statistics.median(training),
                training_ratios=training,
                target=TARGET_RATIO,
                met=met,
                iteration_ratio=statistics.median(iters),
                baseline_runs=res[base],
                candidate_runs=res[cand],
            )
        )
    print()
    print('\n'.join(verdicts))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(
                dict(
                    date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
                    rounds=args.rounds,
                    cfg_options=args.cfg_options,
                    pairs=summary,
                ),
                f,
                indent=2,
            )
    if args.work_dir is None:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return summary


if __name__ == '__main__':
    main()
