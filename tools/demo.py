"""`make demo`: standard training vs BN-AT vs NoFrost on the bundled digits, on CPU.

Trains the three configs of ``configs/demo/`` with ``tools/train.py``, evaluates
each with ``tools/test.py`` (clean and PGD-20 on the whole test split,
AutoAttack on a fixed, seeded subset), prints a Markdown table and writes
``summary.json`` and ``summary.png`` (accuracy bars and training curves) in
``--work-dir``. With several ``--seeds`` it reports mean and standard deviation
over seeds; ``summary.json`` keeps each number as ``{"mean", "std", "n_seeds",
"per_seed"}`` (std null for one seed; the study summaries of 2026-12-02 in
docs/results/ have ``[mean, std]`` pairs, std 0.0 for one seed). Every
invocation trains into a new timestamped folder under ``--work-dir/runs``, so
earlier runs are never overwritten.

Usage:
    python tools/demo.py [--seeds 0 1 2] [--aa-samples 100] [--work-dir DIR]
    python tools/demo.py --study --seeds 0 1 2   # mixed / pure AT / TRADES
    python tools/demo.py --study fast --seeds 0 1 2   # N-FGSM / FGSM-RS vs PGD-5
    python tools/demo.py --study eps --seeds 0 1 2    # eps 32, 48, 64 (+ plot)
    python tools/demo.py --study fast eps --seeds 0 1 2   # both, rows shared
    python tools/demo.py --study dualbn label-smoothing --seeds 0 1 2 \
        --run-dir work_dirs/study_dualbn/runs/main   # resumable
    python tools/demo.py --quick   # one epoch on a few images: a smoke run (CI)
"""

import argparse
import json
import os
import os.path as osp
import platform
import re
import sys
import time

from nofrost_mm.utils.studies import run_logged as run
from nofrost_mm.utils.studies import seed_stats

# (name, config); the order is the table's order
METHODS = [
    ('Standard (BN)', 'configs/demo/resnet18-w16_1xb64_digits.py'),
    ('BN-AT', 'configs/demo/resnet18-w16_1xb64_digits_pgdat.py'),
    ('NoFrost (NF-AT)', 'configs/demo/nf-resnet18-w16_1xb64_digits_pgdat.py'),
]
# the training-recipe study (--study): the paper's mixed loss (the two AT rows
# above), pure adversarial loss and TRADES, each with BN and without a normalizer
RECIPE_METHODS = [
    ('BN-AT pure', 'configs/demo/resnet18-w16_1xb64_digits_pureat.py'),
    ('NF-AT pure', 'configs/demo/nf-resnet18-w16_1xb64_digits_pureat.py'),
    ('BN-TRADES', 'configs/demo/resnet18-w16_1xb64_digits_trades.py'),
    ('NF-TRADES', 'configs/demo/nf-resnet18-w16_1xb64_digits_trades.py'),
]
# the single-step study (--study fast): N-FGSM and FGSM-RS adversarial
# training, BN and NF, with the papers' pure adversarial loss, and N-FGSM
# with the PGD-5 configs' mixed loss, against the PGD-5 AT rows (BN-AT, NoFrost)
FAST_METHODS = [
    ('BN-AT N-FGSM', 'configs/demo/resnet18-w16_1xb64_digits_nfgsm.py'),
    ('NF-AT N-FGSM', 'configs/demo/nf-resnet18-w16_1xb64_digits_nfgsm.py'),
    ('BN-AT N-FGSM mixed', 'configs/demo/resnet18-w16_1xb64_digits_nfgsm-mixed.py'),
    ('NF-AT N-FGSM mixed', 'configs/demo/nf-resnet18-w16_1xb64_digits_nfgsm-mixed.py'),
    ('BN-AT FGSM-RS', 'configs/demo/resnet18-w16_1xb64_digits_fgsmrs.py'),
    ('NF-AT FGSM-RS', 'configs/demo/nf-resnet18-w16_1xb64_digits_fgsmrs.py'),
]
EPS = 32  # /255: at 8/255 a standard model keeps ~75% on these smooth digits
# the large-eps study (--study eps): the three demo methods trained and
# evaluated at each eps; the standard model is trained once per seed (its
# training does not depend on eps) and evaluated at every eps
STUDY_EPS = (32, 48, 64)
EPS_METHODS = [
    (f'{name} @{eps}', config)
    for eps in STUDY_EPS[1:]
    for name, config in [
        ('Standard (BN)', 'configs/demo/resnet18-w16_1xb64_digits.py'),
        ('BN-AT', f'configs/demo/resnet18-w16_1xb64_digits_pgdat-eps{eps}.py'),
        ('NoFrost (NF-AT)', f'configs/demo/nf-resnet18-w16_1xb64_digits_pgdat-eps{eps}.py'),
    ]
]
# the three-way study (--study dualbn): BN-AT, dual-BN AT (AdvProp's
# separate clean and adversarial BNs, both branches tested) and NoFrost at
# eps 32 and 48; the two branches are one trained model, tested twice
DUALBN_METHODS = [
    (
        f'Dual-BN AT, {branch} branch{suffix}',
        f'configs/dualbn/resnet18-w16-dualbn_1xb64_digits_pgdat{config}.py',
    )
    for suffix, config in (('', ''), (' @48', '-eps48'))
    for branch in ('clean', 'adv')
]
# config options of a method's tests (its training is the row with the same
# config): the dual-BN model's adversarial branch
EVAL_OPTIONS = {
    name: ['model.backbone.norm_cfg.deploy_branch=adv']
    for name, _ in DUALBN_METHODS
    if 'adv branch' in name
}
# the label-smoothing ablation (--study label-smoothing): the official
# recipe's label smoothing 0.1 against none (the demo's default)
LS_METHODS = [
    ('BN-AT LS 0.1', 'configs/demo/resnet18-w16_1xb64_digits_pgdat-ls0.1.py'),
    ('NoFrost (NF-AT) LS 0.1', 'configs/demo/nf-resnet18-w16_1xb64_digits_pgdat-ls0.1.py'),
]
ALL_METHODS = METHODS + RECIPE_METHODS + FAST_METHODS + EPS_METHODS + DUALBN_METHODS + LS_METHODS
STUDY = ['BN-AT', 'NoFrost (NF-AT)'] + [n for n, _ in RECIPE_METHODS]
STUDIES = dict(
    recipes=STUDY,
    fast=['BN-AT', 'NoFrost (NF-AT)'] + [n for n, _ in FAST_METHODS],
    eps=[n for n, _ in METHODS + EPS_METHODS],
    dualbn=['BN-AT', 'NoFrost (NF-AT)', 'BN-AT @48', 'NoFrost (NF-AT) @48']
    + [n for n, _ in DUALBN_METHODS],
    **{'label-smoothing': ['BN-AT', 'NoFrost (NF-AT)'] + [n for n, _ in LS_METHODS]},
)


def method_eps(name):
    """The eps (/255) a method is trained and evaluated at."""
    match = re.search(r' @(\d+)$', name)
    return int(match.group(1)) if match else EPS


def family(name):
    """The method without its eps suffix ('BN-AT @48' -> 'BN-AT')."""
    return re.sub(r' @\d+$', '', name)


def pgd20(eps):
    # early exit: a sample counts as broken at the first iterate that
    # misclassifies it (never weaker than the last iterate, and cheaper)
    return dict(type='PGDAttack', eps=eps, steps=20, early_exit=True, name='PGD-20')


def autoattack(eps):
    return dict(type='AutoAttack', eps=eps, version='standard', name='AutoAttack')


# --quick: tiny data and one epoch, to check the pipeline end to end
QUICK_TRAIN = [
    'train_cfg.max_epochs=1',
    'train_dataloader.dataset.indices=128',
    'val_dataloader.dataset.indices=64',
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument(
        '--aa-samples',
        type=int,
        default=100,
        help='test images attacked by AutoAttack (fixed, '
        'seeded subset); clean and PGD-20 use all 360',
    )
    parser.add_argument(
        '--quick', action='store_true', help='one epoch on a few images: a smoke run'
    )
    parser.add_argument(
        '--run-dir',
        default=None,
        help='train and test in this folder (created if '
        'missing) instead of a new --work-dir/runs/<time>; '
        'a run of it with a result.json is reused, not '
        'repeated: a killed study resumes',
    )
    parser.add_argument(
        '--report-only',
        action='store_true',
        help='with --run-dir: the table of its finished runs '
        '(rows name their seeds), nothing is trained or tested',
    )
    known = [m for m, _ in ALL_METHODS]
    parser.add_argument(
        '--methods',
        nargs='+',
        default=None,
        help=f'method names to run (default: the first {len(METHODS)}); allowed: {known}',
    )
    parser.add_argument(
        '--study',
        nargs='*',
        default=None,
        choices=sorted(STUDIES),
        help='a study instead of the default methods: '
        '`--study` / `--study recipes` the training-recipe '
        'study (mixed-loss, pure and TRADES adversarial '
        f'training, BN and NF, {len(STUDY)} methods); '
        '`--study fast` single-step AT (N-FGSM, FGSM-RS; BN '
        f'and NF) against PGD-5 AT ({len(STUDIES["fast"])} '
        'methods); `--study eps` standard, BN-AT and NoFrost '
        f'at eps {"/".join(map(str, STUDY_EPS))} with a plot '
        'of clean and AutoAttack accuracy against eps; '
        '`--study dualbn` BN-AT, dual-BN AT (both '
        'branches) and NoFrost at eps 32 and 48; '
        '`--study label-smoothing` BN-AT and NoFrost with '
        'label smoothing 0.1 and without; '
        'several studies in one run share their rows',
    )
    args = parser.parse_args()
    if args.report_only and args.run_dir is None:
        parser.error('--report-only needs --run-dir')
    if args.aa_samples < 1:
        parser.error('--aa-samples must be >= 1')
    if args.study is not None and args.methods:
        parser.error('--study and --methods are exclusive')
    if args.study is not None:
        studies = args.study or ['recipes']  # a bare --study
        args.methods = list(dict.fromkeys(m for study in studies for m in STUDIES[study]))
    if args.methods:
        unknown = set(args.methods) - set(known)
        if unknown:
            parser.error(f'--methods {sorted(unknown)}: allowed {known}')
    return args


def train(config, work_dir, seed, quick):
    options = [f'randomness.seed={seed}'] + (QUICK_TRAIN if quick else [])
    # a training killed in a --run-dir continues from its last checkpoint
    # (the time is then that of the rest only)
    resume = ['--resume'] if osp.exists(osp.join(work_dir, 'last_checkpoint')) else []
    start = time.time()
    run(
        ['tools/train.py', config, '--work-dir', work_dir, *resume, '--cfg-options', *options],
        osp.join(work_dir, 'train_console.log'),
        show=lambda line: 'Epoch(' in line,
    )
    seconds = time.time() - start
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip(), seconds


def evaluate(config, checkpoint, work_dir, attacks, num_samples, name, options=()):
    out = osp.join(work_dir, f'test_{name}.json')
    cmd = [
        'tools/test.py',
        config,
        checkpoint,
        '--work-dir',
        osp.join(work_dir, f'test_{name}'),
        '--out',
        out,
        '--attacks',
        *[repr(a) for a in attacks],
    ]
    if num_samples is not None:
        cmd += ['--num-samples', str(num_samples)]
    if options:
        cmd += ['--cfg-options', *options]
    run(
        cmd,
        osp.join(work_dir, f'test_{name}_console.log'),
        show=lambda line: 'robust/' in line or 'WARNING' in line and 'masking' in line.lower(),
    )
    with open(out) as f:
        return json.load(f)


def read_curves(work_dir):
    """Training loss per logged iteration and val metrics per epoch."""
    curves = dict(iter=[], loss=[], epoch=[], val_clean=[], val_robust=[])
    for root, _, files in os.walk(work_dir):
        if 'scalars.json' not in files or 'vis_data' not in root:
            continue
        with open(osp.join(root, 'scalars.json')) as f:
            for line in f:
                rec = json.loads(line)
                if 'loss' in rec and 'iter' in rec:
                    curves['iter'].append(rec['iter'])
                    curves['loss'].append(rec['loss'])
                elif 'accuracy/top1' in rec:
                    curves['epoch'].append(rec['step'])
                    curves['val_clean'].append(rec['accuracy/top1'])
                    curves['val_robust'].append(rec.get('robust_accuracy/top1', float('nan')))
    return curves


def fmt(stats):
    """'98.6 ± 0.2' over seeds, '98.6' for one, '-' for none."""
    if stats['mean'] is None:
        return '-'
    if stats['std'] is None:
        return f"{stats['mean']:.1f}"
    return f"{stats['mean']:.1f} ± {stats['std']:.1f}"


def markdown_table(summary):
    rows = [
        '| method | eps (/255) | clean acc (%) | PGD-20 acc (%) '
        '| AutoAttack acc (%) | worst case (%) | train time (s) |',
        '| --- | --- | --- | --- | --- | --- | --- |',
    ]
    for name, res in summary['methods'].items():
        cells = [
            fmt(res[key]) for key in ('clean', 'pgd20', 'autoattack', 'worst_case', 'train_seconds')
        ]
        # a row of a study stopped early names the seeds it has
        seeds = [r['seed'] for r in summary.get('runs', {}).get(name, [])]
        label = (
            name
            if not seeds or seeds == list(summary['seeds'])
            else (f'{name} (seeds {", ".join(map(str, seeds))})')
        )
        rows.append(f'| {label} | {res["eps"]} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(rows)


def plot(summary, curves, path):
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = list(summary['methods'])
    fig, axes = plt.subplots(1, 3, figsize=(16 + 1.5 * max(0, len(names) - 3), 4.5))
    keys = [('clean', 'clean'), ('pgd20', 'PGD-20'), ('autoattack', 'AutoAttack')]
    width = 0.8 / len(keys)
    for k, (key, label) in enumerate(keys):
        means = [summary['methods'][n][key]['mean'] or 0.0 for n in names]
        stds = [summary['methods'][n][key]['std'] or 0.0 for n in names]
        xs = [i + (k - 1) * width for i in range(len(names))]
        bars = axes[0].bar(xs, means, width, yerr=stds, capsize=3, label=label)
        axes[0].bar_label(bars, fmt='%.1f', fontsize=7)
    axes[0].set_xticks(range(len(names)), names, fontsize=9, rotation=25 if len(names) > 3 else 0)
    axes[0].set_ylabel('test accuracy (%)')
    axes[0].set_ylim(0, 105)
    epses = sorted({res['eps'] for res in summary['methods'].values()})
    axes[0].set_title('Digits test split, eps ' + '/'.join(map(str, epses)) + ' /255')
    axes[0].legend(fontsize=8)
    for i, name in enumerate(names):
        c = curves[name]
        color = f'C{i + 3}'  # one colour per method (C0-C2 are the bars')
        axes[1].plot(c['iter'], c['loss'], color=color, label=name)
        axes[2].plot(c['epoch'], c['val_clean'], color=color, marker='o', label=f'{name} clean')
        if any(v == v for v in c['val_robust']):  # not all NaN
            axes[2].plot(
                c['epoch'],
                c['val_robust'],
                color=color,
                marker='x',
                ls='--',
                label=f'{name} PGD (val)',
            )
    axes[1].set_xlabel('iteration')
    axes[1].set_ylabel('training loss (seed %d)' % summary['seeds'][0])
    axes[1].set_title('Training loss')
    axes[1].legend(fontsize=8)
    axes[2].set_xlabel('epoch')
    axes[2].set_ylabel('accuracy (%)')
    axes[2].set_title('Validation during training')
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_against_eps(summary, path):
    """Clean and AutoAttack accuracy against eps, mean and std over seeds."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    families = list(dict.fromkeys(family(n) for n in summary['methods']))
    for ax, (key, label) in zip(axes, [('clean', 'clean'), ('autoattack', 'AutoAttack')]):
        for i, fam in enumerate(families):
            points = sorted(
                (res['eps'], res[key]['mean'], res[key]['std'])
                for n, res in summary['methods'].items()
                if family(n) == fam
            )
            if len(points) < 2 or any(m is None for _, m, _ in points):
                continue
            ax.errorbar(
                [e for e, _, _ in points],
                [m for _, m, _ in points],
                yerr=[s or 0.0 for _, _, s in points],
                marker='o',
                capsize=3,
                color=f'C{i}',
                label=fam,
            )
        ax.set_xlabel('eps (/255), training and test')
        ax.set_xticks(sorted({res['eps'] for res in summary['methods'].values()}))
        ax.set_title(f'{label} accuracy, digits test split (seeds {summary["seeds"]})')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel('test accuracy (%), mean ± std over seeds')
    axes[0].set_ylim(0, 102)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summarize(args, per_run, run_root):
    """The summary of the runs done so far (rows without runs left out)."""
    done = {name: runs for name, runs in per_run.items() if runs}
    summary = dict(
        command=' '.join(['python'] + sys.argv),
        seeds=args.seeds,
        quick=args.quick,
        eps=sorted({method_eps(n) for n in done}),
        run_dir=run_root,
        machine=f'{platform.machine()}, {os.cpu_count()} CPU cores, '
        f'Python {platform.python_version()}',
        methods={
            name: dict(
                eps=method_eps(name),
                **{
                    key: seed_stats([r[key] for r in runs])
                    for key in ('clean', 'pgd20', 'autoattack', 'worst_case', 'train_seconds')
                },
            )
            for name, runs in done.items()
        },
        runs=done,
    )
    summary['table'] = markdown_table(summary)
    return summary


def run_method(name, config, seed, work_dir, trained, args):
    """Train (or reuse this seed's model of ``config``) and test one row."""
    eps = method_eps(name)
    aa_samples = 16 if args.quick else args.aa_samples
    options = EVAL_OPTIONS.get(name, ())
    if config in trained:  # e.g. the standard model at another eps
        ckpt, seconds, train_dir = trained[config]
        print(
            f'\n==> [{name}, seed {seed}] the model trained for {osp.basename(train_dir)}',
            flush=True,
        )
    else:
        print(f'\n==> [{name}, seed {seed}] training {config}', flush=True)
        ckpt, seconds = train(config, work_dir, seed, args.quick)
        train_dir = work_dir
        trained[config] = ckpt, seconds, work_dir
    # the AutoAttack run repeats PGD-20 on its images (cheap next to
    # AutoAttack) for the per-sample worst case over both
    if args.quick:  # one evaluation run: the same few images
        print(
            f'==> [{name}, seed {seed}] trained in {seconds:.0f} s; '
            f'PGD-20 and AutoAttack on {aa_samples} test images, '
            f'eps {eps}/255',
            flush=True,
        )
        main_res = aa_res = evaluate(
            config, ckpt, work_dir, [pgd20(eps), autoattack(eps)], aa_samples, 'attacks', options
        )
    else:
        print(
            f'==> [{name}, seed {seed}] trained in {seconds:.0f} s; '
            f'clean + PGD-20 on the test split, eps {eps}/255',
            flush=True,
        )
        main_res = evaluate(config, ckpt, work_dir, [pgd20(eps)], None, 'pgd20', options)
        print(
            f'==> [{name}, seed {seed}] PGD-20 + AutoAttack on {aa_samples} test images', flush=True
        )
        aa_res = evaluate(
            config, ckpt, work_dir, [pgd20(eps), autoattack(eps)], aa_samples, 'autoattack', options
        )
    return dict(
        seed=seed,
        eps=eps,
        checkpoint=ckpt,
        train_seconds=seconds,
        train_dir=train_dir,
        test_options=list(options),
        clean=main_res['robust/clean'],
        pgd20=main_res['robust/PGD-20'],
        autoattack=aa_res['robust/AutoAttack'],
        worst_case=aa_res['robust/worst_case'],
        autoattack_clean=aa_res['robust/clean'],
        pgd20_samples=main_res['robust/num_samples'],
        autoattack_samples=aa_res['robust/num_samples'],
    )


def main():
    started = time.time()
    args = parse_args()
    methods = (
        METHODS if args.methods is None else [(n, c) for n, c in ALL_METHODS if n in args.methods]
    )
    if args.run_dir is None:
        stamp = time.strftime('%Y%m%d_%H%M%S')
        run_root = osp.join(args.work_dir, 'runs', stamp)
        os.makedirs(run_root, exist_ok=False)
    else:
        run_root = args.run_dir
        os.makedirs(run_root, exist_ok=True)
    print(
        f'nofrost-mm demo: {len(methods)} methods x {len(args.seeds)} '
        f'seed(s) on CPU; runs in {run_root}',
        flush=True,
    )
    os.makedirs(args.work_dir, exist_ok=True)

    per_run = {n: [] for n, _ in methods}
    curves = {}
    for seed in args.seeds:
        trained = {}  # config -> (checkpoint, seconds, work dir) of this seed
        for name, config in methods:
            slug = re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')
            work_dir = osp.join(run_root, f'{slug}_seed{seed}')
            result_path = osp.join(work_dir, 'result.json')
            if osp.exists(result_path):  # --run-dir: done before
                with open(result_path) as f:
                    record = json.load(f)
                trained.setdefault(
                    config, (record['checkpoint'], record['train_seconds'], record['train_dir'])
                )
                print(f'==> [{name}, seed {seed}] done before: {result_path}', flush=True)
            elif args.report_only:
                continue
            else:
                os.makedirs(work_dir, exist_ok=args.run_dir is not None)
                record = run_method(name, config, seed, work_dir, trained, args)
                with open(result_path, 'w') as f:
                    json.dump(record, f, indent=2)
            per_run[name].append(record)
            if name not in curves:  # the first seed the row has
                curves[name] = read_curves(record['train_dir'])
            # the rows so far, for a study stopped before its end
            with open(osp.join(args.work_dir, 'summary.json'), 'w') as f:
                json.dump(summarize(args, per_run, run_root), f, indent=2)

    summary = summarize(args, per_run, run_root)
    if not summary['methods']:
        raise SystemExit(f'no finished run in {run_root}')
    table = summary['table']
    with open(osp.join(args.work_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    plot(summary, curves, osp.join(args.work_dir, 'summary.png'))
    written = ['summary.json', 'summary.png']
    if len(summary['eps']) > 1:
        plot_against_eps(summary, osp.join(args.work_dir, 'eps_study.png'))
        written.append('eps_study.png')
    first = next(runs for runs in per_run.values() if runs)[0]
    print(
        f'\nDigits test split (360 images; AutoAttack on a seeded subset of '
        f"{first['autoattack_samples']}; worst case over PGD-20 and "
        f"AutoAttack on it), eps in {summary['eps']} /255, "
        f"seeds {args.seeds}{' (QUICK smoke run)' if args.quick else ''}:\n"
    )
    print(table)
    print('\nwrote ' + ', '.join(osp.join(args.work_dir, f) for f in written))
    wall = time.time() - started
    print(
        f'demo wall time: {int(wall // 60)} min {wall % 60:.0f} s '
        f"({time.strftime('%Y-%m-%d')}, {summary['machine']})"
    )


if __name__ == '__main__':
    main()
