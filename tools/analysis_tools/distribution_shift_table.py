"""The paper's distribution-shift table for one or more checkpoints.

For each CONFIG CHECKPOINT pair: ImageNet clean top-1 (the config's own test
set), ImageNet-C mCE and mean accuracy, ImageNet-R, ImageNet-A (both scored on
the 200 logits of their classes, as the official evaluation) and
ImageNet-Sketch top-1, plus robust columns (accuracy under each attack and the
per-sample worst case) on the benchmarks of ``--robust-benchmarks`` when
attacks are configured. Writes ``distribution_shift.md``, ``.json`` and a bar
plot ``.png`` to ``--out``.

Each benchmark is the model's config with the test set of
``configs/_base_/datasets/{imagenet-c,imagenet-r,imagenet-a,imagenet-sketch}_bs64.py``,
tested by the config's runner (``--launcher pytorch`` under
``torch.distributed.run`` splits every test over the processes).

Usage:
    python tools/analysis_tools/distribution_shift_table.py \
        CONFIG CHECKPOINT [CONFIG CHECKPOINT ...] --out DIR [--labels A B] \
        [--benchmarks imagenet imagenet-c imagenet-r imagenet-a imagenet-sketch] \
        [--data-root imagenet=data/imagenet imagenet-r=/datasets/imagenet-r ...] \
        [--attacks none | TYPE | "{'type': 'PGD', 'eps': 8, 'steps': 20}" ...] \
        [--robust-benchmarks imagenet] [--num-samples 1000] [--batch-size 64] \
        [--dataset-config imagenet-r=my_imagenet-r.py] [--num-workers 8]
"""

import os
import os.path as osp
import time

from nofrost_mm.utils import cli

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATASET_CONFIGS = osp.join(REPO_ROOT, 'configs', '_base_', 'datasets')


def parse_args(argv=None):
    from nofrost_mm.evaluation.distribution_shift import BENCHMARKS

    parser = cli.models_parser(
        'ImageNet / -C / -R / -A / -Sketch table (Markdown, JSON, '
        'bar plot) for one or more checkpoints',
        'output folder',
    )
    parser.add_argument(
        '--benchmarks',
        nargs='+',
        default=list(BENCHMARKS),
        choices=list(BENCHMARKS),
        help='columns (default: all)',
    )
    parser.add_argument(
        '--data-root',
        nargs='+',
        default=[],
        metavar='NAME=PATH',
        help='data root of a benchmark; defaults: '
        + ', '.join(f'{b.name}={b.default_root}' for b in BENCHMARKS.values() if b.default_root)
        + "; imagenet: the config's own test set where "
        'the config puts it (a root given here holds val/)',
    )
    parser.add_argument(
        '--dataset-config',
        nargs='+',
        default=[],
        metavar='NAME=FILE',
        help='replace the dataset config of a benchmark (default: '
        'configs/_base_/datasets/<name>_bs64.py), e.g. for another pipeline; its '
        'test_dataloader, test_evaluator and custom_hooks are used',
    )
    parser.add_argument(
        '--attacks',
        nargs='+',
        help="robust columns: 'none', or attacks as in tools/test.py (type names "
        "or dict literals \"{'type': 'PGD', 'eps': 8, 'steps': 20}\"); default: "
        "each config's test_attacks",
    )
    parser.add_argument(
        '--robust-benchmarks',
        nargs='+',
        default=['imagenet'],
        choices=list(BENCHMARKS),
        help='benchmarks attacked (default: imagenet)',
    )
    parser.add_argument(
        '--num-samples', type=int, help='seeded subset of each robust run (default: all)'
    )
    parser.add_argument('--batch-size', type=int, help='test batch size')
    parser.add_argument(
        '--num-workers', type=int, help='dataloader workers per process (default: the configs\')'
    )
    cli.add_tool_runner_args(parser)
    args = cli.parse_launched(parser, argv)
    cli.check_at_least(parser, args, num_samples=1, batch_size=1, num_workers=0)
    # checked (paths, pairs) before any config is read
    args.pairs = cli.model_pairs(parser, args)
    return args


def model_attacks(args, cfg):
    """The attack configs of a model's robust runs ([] for none)."""
    from nofrost_mm.attacks import parse_attack

    specs = cli.attack_specs(args.attacks)
    if specs is not None:
        return [parse_attack(a) for a in specs]
    return list(cfg.get('test_attacks', None) or [])


def plan_runs(args, models):
    """Check every input before any model is built; the runs to do."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import DATASETS

    from nofrost_mm.attacks import build_attacks
    from nofrost_mm.evaluation.distribution_shift import (
        BENCHMARKS,
        benchmark_cfg,
        check_head_for_benchmark,
        parse_data_roots,
    )

    roots = parse_data_roots(args.data_root, args.benchmarks)
    files = parse_data_roots(args.dataset_config, args.benchmarks, '--dataset-config')
    dataset_cfgs = {}
    for b in args.benchmarks:
        bench = BENCHMARKS[b]
        if roots[b] is not None and not osp.exists(roots[b]):
            raise FileNotFoundError(
                f'{bench.title}: data root {roots[b]} does not exist (--data-root {b}=PATH)'
            )
        path = (
            files[b]
            if files[b] is not None
            else None
            if bench.dataset_config is None
            else osp.join(DATASET_CONFIGS, bench.dataset_config)
        )
        if path is not None:
            if not osp.isfile(path):
                raise FileNotFoundError(f'{bench.title}: dataset config {path}: no such file')
            dataset_cfgs[b] = Config.fromfile(path)
    runs = []
    for i, m in enumerate(models):
        init_default_scope(m['cfg'].get('default_scope', 'mmpretrain'))
        attacks = model_attacks(args, m['cfg'])
        built = build_attacks(attacks) if attacks else []
        m['attack_names'] = [name for name, _, _ in built]
        for b in args.benchmarks:
            bench = BENCHMARKS[b]
            own_root = m['cfg'].get('test_dataloader', {}).get('dataset', {}).get('data_root')
            if roots[b] is None and own_root and not osp.exists(own_root):
                raise FileNotFoundError(
                    f"{bench.title}: {m['config']}: test_dataloader.dataset.data_root="
                    f'{own_root} does not exist (--data-root {b}=PATH)'
                )
            cfg = benchmark_cfg(
                m['cfg'],
                bench,
                roots[b],
                dataset_cfgs.get(b),
                batch_size=args.batch_size,
                num_workers=args.num_workers,
            )
            # the class list and the head width, before any model work
            dataset = DATASETS.build(dict(cfg.test_dataloader.dataset, lazy_init=True))
            check_head_for_benchmark(m['cfg'], dataset, bench)
            todo = [(cfg, None)]
            if attacks and b in args.robust_benchmarks:
                todo.append(
                    (
                        benchmark_cfg(
                            m['cfg'],
                            bench,
                            roots[b],
                            dataset_cfgs.get(b),
                            attacks=attacks,
                            num_samples=args.num_samples,
                            batch_size=args.batch_size,
                            num_workers=args.num_workers,
                        ),
                        m['attack_names'],
                    )
                )
            for run_cfg, names in todo:
                # a class-subset set is only scored right on its subset's
                # logits (whatever --dataset-config holds; of two, one acts)
                if 'class_subset' in dataset.metainfo:
                    run_cfg.default_hooks = dict(run_cfg.get('default_hooks', None) or {})
                    run_cfg.default_hooks.setdefault('class_subset', dict(type='ClassSubsetHook'))
                runs.append((i, b, run_cfg, names))
    return roots, runs


def run_one(i, model, bench, cfg, args, robust):
    kind = 'robust' if robust else 'clean'
    runner = cli.build_tool_runner(
        cfg,
        model['checkpoint'],
        osp.join(args.out, 'work_dirs', f"{i}_{model['stem']}", f'{bench}_{kind}'),
        f"distribution_shift_{i}_{model['stem']}_{bench}_{kind}",
        args.launcher,
        args.log_level,
    )
    metrics = runner.test()
    return runner.rank, metrics


def _main(argv=None):
    args = parse_args(argv)
    from nofrost_mm.evaluation import distribution_shift as ds

    models = cli.load_model_configs(args.pairs, args.cfg_options)
    roots, runs = plan_runs(args, models)
    os.makedirs(args.out, exist_ok=True)
    results = [
        dict(name=m['name'], config=m['config'], checkpoint=m['checkpoint'], results={})
        for m in models
    ]
    rank, start = 0, time.perf_counter()
    # progress from the first process only (the launchers set RANK)
    log = print if int(os.environ.get('RANK', 0)) == 0 else (lambda *a, **k: None)
    for k, (i, b, cfg, attack_names) in enumerate(runs):
        what = f"{models[i]['name']} on {ds.BENCHMARKS[b].title}" + (
            f" under {', '.join(attack_names)}" if attack_names else ''
        )
        log(f'[{k + 1}/{len(runs)}] {what}', flush=True)
        t0 = time.perf_counter()
        rank, metrics = run_one(i, models[i], b, cfg, args, attack_names is not None)
        cols = ds.result_columns(ds.BENCHMARKS[b], metrics, attack_names or ())
        results[i]['results'].setdefault(b, {}).update(cols)
        shown = ', '.join(
            f'{c} {v:.2f}' for c, v in cols.items() if v is not None and c != 'robust_num_samples'
        )
        log(f'[{k + 1}/{len(runs)}] {what}: {shown} ({time.perf_counter() - t0:.0f} s)', flush=True)
    if rank != 0:
        return
    settings = dict(
        benchmarks=' '.join(args.benchmarks),
        data_roots=', '.join(f"{b}={roots[b] or 'own test set'}" for b in args.benchmarks),
        robust_benchmarks=' '.join(args.robust_benchmarks)
        if any(m['attack_names'] for m in models)
        else 'none',
        attacks='; '.join(f"{m['name']}: {', '.join(m['attack_names']) or 'none'}" for m in models),
        num_samples_robust=args.num_samples or 'all',
        launcher=args.launcher,
        world_size=int(os.environ.get('WORLD_SIZE', 1)),
        seconds=round(time.perf_counter() - start, 1),
    )
    paths = ds.output_paths(args.out)
    ds.write_markdown(paths['markdown'], results, args.benchmarks, settings)
    ds.write_json(paths['json'], results, settings)
    ds.plot_bars(paths['plot'], results, args.benchmarks)
    with open(paths['markdown']) as f:
        print(f.read().split('\n\n')[1], flush=True)
    print(f"table written to {paths['markdown']}, {paths['json']}, {paths['plot']}", flush=True)


def main(argv=None):
    cli.then_leave_together(_main, argv)


if __name__ == '__main__':
    main()
