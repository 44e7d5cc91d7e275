"""Attack-strength report with gradient-masking diagnostics for checkpoints.

For each CONFIG CHECKPOINT pair: robust accuracy against attack strength
(PGD with 5/10/20/50/100 steps and 1/5 restarts, APGD-CE and APGD-DLR,
Square as a black-box check, full AutoAttack) and against eps (APGD-CE over
5 eps values), the per-sample worst case, and gradient-masking flags (still
falling with more steps, black box beating white box, zero or vanishing input
gradients, not reaching 0 at large eps, a stronger attack above a weaker one).
Writes ``report.md``, ``report.json``, ``accuracy_vs_steps.png`` and
``accuracy_vs_eps.png`` to ``--out``.

The eps defaults to the configs' training attack eps (``--eps`` otherwise);
the test subset is fixed by ``--num-samples`` and ``--seed``, and the numbers
do not depend on the number of processes. The report runs its own attacks and
metric whatever the configs' ``test_attacks`` / ``test_cfg`` /
``test_evaluator`` say; the settings of every attack (eps, step, steps,
restarts) are printed before the first one runs and written to the report.
An ``--out`` that holds a report is continued with ``--resume``, never
overwritten.

Usage:
    python tools/analysis_tools/robustness_report.py \
        CONFIG CHECKPOINT [CONFIG CHECKPOINT ...] --out DIR [--labels A B] \
        [--num-samples 64] [--seed 0] [--eps 32] [--eps-list 8 16 32 64 128]
    # several processes (gloo on CPU, NCCL on GPUs), same numbers:
    python -m torch.distributed.run --nproc_per_node 2 \
        tools/analysis_tools/robustness_report.py ... --launcher pytorch
"""

import copy
import os
import os.path as osp
import time

from nofrost_mm.utils import cli

DEFAULT_NUM_SAMPLES = 32


def parse_args(argv=None):
    from nofrost_mm.evaluation.robustness_report import (
        AUTOATTACK_SQUARE_QUERIES,
        DEFAULT_APGD_STEPS,
        DEFAULT_PGD_STEPS,
        DEFAULT_RESTARTS,
        DEFAULT_SQUARE_QUERIES,
    )

    parser = cli.models_parser(
        'Robust accuracy against attack strength and eps, with '
        'gradient-masking flags, for one or more checkpoints',
        'output folder',
    )
    parser.add_argument(
        '--num-samples',
        type=int,
        default=DEFAULT_NUM_SAMPLES,
        help='fixed random subset of the test set (default: '
        f'{DEFAULT_NUM_SAMPLES}, under 10 minutes for the CPU demo models)',
    )
    parser.add_argument('--seed', type=int, default=0, help='seed of the subset and of the attacks')
    parser.add_argument(
        '--resume',
        action='store_true',
        help='continue a killed report in the same --out: finished models and '
        'batches are read back from their per-batch results (same models, '
        'attacks, subset and number of processes)',
    )
    parser.add_argument(
        '--eps',
        type=float,
        help='L-inf eps in pixel units of 255 (default: the training attack\'s eps in the configs)',
    )
    parser.add_argument(
        '--eps-list',
        type=float,
        nargs='+',
        help='eps values of the accuracy-vs-eps curve (default: 1/4, 1/2, '
        '1, 2 and 4 times the eps)',
    )
    parser.add_argument('--pgd-steps', type=int, nargs='+', default=list(DEFAULT_PGD_STEPS))
    parser.add_argument(
        '--restarts',
        type=int,
        default=DEFAULT_RESTARTS,
        help='PGD restarts (reported for 1 and for this many)',
    )
    parser.add_argument(
        '--pgd-step-size',
        type=float,
        help='PGD step size in pixel units of 255 for every step count '
        '(default: the official min(1.25 eps, eps + 4) / steps, under which '
        'more steps do not travel farther)',
    )
    parser.add_argument('--apgd-steps', type=int, default=DEFAULT_APGD_STEPS)
    parser.add_argument(
        '--square-queries',
        type=int,
        default=DEFAULT_SQUARE_QUERIES,
        help='queries of the black-box Square attack (0: skip)',
    )
    parser.add_argument(
        '--autoattack',
        default='standard',
        choices=['standard', 'none'],
        help='standard AutoAttack (APGD-CE, APGD-T, FAB-T with --apgd-steps '
        "iterations, Square with 5000 queries) or 'none' to skip it",
    )
    parser.add_argument(
        '--autoattack-queries',
        type=int,
        default=AUTOATTACK_SQUARE_QUERIES,
        help="queries of AutoAttack's Square stage (the standard version: "
        f'{AUTOATTACK_SQUARE_QUERIES}; fewer make a weaker AutoAttack)',
    )
    parser.add_argument(
        '--attacks',
        nargs='+',
        default=[],
        help='more attacks: type names of the ATTACKS registry or dict '
        "literals \"{'type': 'MIFGSM', 'steps': 20}\" (an attack without eps "
        "gets the report's eps, and a torchattacks step (alpha) the plug-in's "
        'rule min(1.25 eps, eps + 4) / steps)',
    )
    parser.add_argument(
        '--tolerance',
        type=float,
        help='accuracy points a flag tolerates (default: 2 samples, at least 1 point)',
    )
    parser.add_argument('--batch-size', type=int, help='test batch size (default: the config\'s)')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='run the attacks under autocast (fp16 on CUDA, bf16 on a CPU) '
        'where they are as strong as in fp32 (the others in fp32); the report '
        'says which precision each attack ran in',
    )
    cli.add_tool_runner_args(parser)
    args = cli.parse_launched(parser, argv)
    cli.check_at_least(parser, args, num_samples=1, batch_size=1)
    if args.tolerance is not None and args.tolerance < 0:
        parser.error(f'--tolerance must be >= 0, got {args.tolerance}')
    # checked (paths, pairs) before any config is read
    args.pairs = cli.model_pairs(parser, args)
    return args


def check_inputs(args, models):
    """What would fail after attacks ran, checked before any model is built.

    The output folder holds no finished report (unless ``--resume``), and each
    config has a test set of at least ``--num-samples`` samples (the test
    sets are built, not their images read: a missing data folder fails
    here, not after the first model's attacks).
    """
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import DATASETS

    # report.json is written last, by rank 0: every process sees the same
    # (a killed report's per-batch results are kept either way: a new run
    # writes them into a new timestamped folder)
    earlier = osp.join(args.out, 'report.json')
    if osp.exists(earlier) and not args.resume:
        raise FileExistsError(
            f'--out {args.out} holds an earlier report ({earlier}): pass '
            '--resume to read it back (same models, attacks and subset), or '
            'choose another --out'
        )
    for m in models:
        loader = m['cfg'].get('test_dataloader')
        if not isinstance(loader, dict) or not isinstance(loader.get('dataset'), dict):
            raise ValueError(
                f"config {m['config']}: no test_dataloader.dataset; the report attacks the test set"
            )
        init_default_scope(m['cfg'].get('default_scope', 'mmpretrain'))
        size = len(DATASETS.build(copy.deepcopy(loader['dataset'])))
        if args.num_samples > size:
            raise ValueError(
                f'--num-samples {args.num_samples} is larger than '
                f"the test set of {m['config']} ({size} samples)"
            )


def resolve_eps(args, models):
    """The report's eps and where it came from."""
    from nofrost_mm.evaluation.robustness_report import configs_eps

    if args.eps is not None:
        return args.eps, '--eps'
    eps = configs_eps({m['config']: m['cfg'] for m in models})
    if eps is None:
        raise ValueError(
            'no attack eps in the configs (no training attack, '
            'val_attack or test_attacks): pass --eps, e.g. --eps 8 '
            'for 8/255'
        )
    return eps, "the configs' training attack"


def run_model(i, model, args, plan):
    """Attack one model through its runner; the records on rank 0."""
    from nofrost_mm.evaluation.metrics import RobustnessRecords

    cfg = model['cfg']
    stem = model['stem']
    plan.set_test(cfg, args.num_samples, args.seed, args.resume, args.amp)
    if args.batch_size is not None:
        cfg.test_dataloader.batch_size = args.batch_size
    runner = cli.build_tool_runner(
        cfg,
        model['checkpoint'],
        osp.join(args.out, 'work_dirs', f'{i}_{stem}'),
        f'robustness_report_{i}_{stem}',
        args.launcher,
        args.log_level,
    )
    # the loop is built (no checkpoint loaded, no attack run) to check that
    # it runs the plan's attacks and keeps the per-sample records the report
    # is made of
    metric = runner.test_loop.robust_metric
    names = [name for name, _, _ in runner.test_loop.attacks]
    if not isinstance(metric, RobustnessRecords) or names != list(plan.built):
        raise RuntimeError(
            f"{model['config']}: the report's test loop would run {names} "
            f'measured by {type(metric).__name__}, not the attacks '
            f'{list(plan.built)} by RobustnessRecords'
        )
    runner.test()
    return runner.rank, metric.records


def _main(argv=None):
    args = parse_args(argv)
    from nofrost_mm.attacks import format_settings, parse_attack
    from nofrost_mm.evaluation import robustness_report as report

    # every input is checked before any model is built or loaded
    models = cli.load_model_configs(args.pairs, args.cfg_options)
    eps, eps_source = resolve_eps(args, models)
    plan = report.ReportPlan(
        eps=eps,
        eps_list=args.eps_list or report.default_eps_list(eps),
        pgd_steps=args.pgd_steps,
        restarts=args.restarts,
        pgd_step_size=args.pgd_step_size,
        apgd_steps=args.apgd_steps,
        square_queries=args.square_queries,
        autoattack=args.autoattack == 'standard',
        autoattack_queries=args.autoattack_queries,
        extra_attacks=[parse_attack(a, eps) for a in cli.attack_specs(args.attacks) or []],
    )
    tolerance = args.tolerance
    check_inputs(args, models)
    os.makedirs(args.out, exist_ok=True)
    if int(os.environ.get('RANK', 0)) == 0:
        print(
            'attacks as run (sizes in pixel units of 255):\n'
            + '\n'.join(
                '  ' + format_settings(f"{name} ({plan.built[name][1]['type']})", s)
                for name, s in plan.settings.items()
            ),
            flush=True,
        )

    rank = 0
    start = time.perf_counter()
    for i, model in enumerate(models):
        print(
            f"[{i + 1}/{len(models)}] {model['name']}: "
            f"{len(plan.cfgs)} attacks on {args.num_samples} samples, eps "
            f'{eps:g}/255',
            flush=True,
        )
        t0 = time.perf_counter()
        rank, records = run_model(i, model, args, plan)
        if rank == 0:
            model['summary'] = report.summarize(records, plan, tolerance)
            s = model['summary']
            print(
                f"[{i + 1}/{len(models)}] {model['name']}: clean "
                f"{s['clean']:.2f}%, worst case {s['worst_case']:.2f}%, "
                f"{len(s['flags'])} flag(s) "
                f'({time.perf_counter() - t0:.0f} s)',
                flush=True,
            )
        del model['cfg']
    if rank != 0:
        return
    n_used = models[0]['summary']['num_samples']
    settings = dict(
        eps=eps,
        eps_source=eps_source,
        seed=args.seed,
        num_samples=args.num_samples,
        num_samples_used=n_used,
        tolerance=report.default_tolerance(n_used) if tolerance is None else tolerance,
        launcher=args.launcher,
        world_size=int(os.environ.get('WORLD_SIZE', 1)),
        seconds=time.perf_counter() - start,
    )
    paths = report.write_report(args.out, models, plan, settings)
    for m in models:
        for f in m['summary']['flags']:
            print(f"FLAG {m['name']}: [{f['id']}] {f['message']}", flush=True)
    print(f"report written to {paths['markdown']} ({settings['seconds']:.0f} s)", flush=True)


def main(argv=None):
    cli.then_leave_together(_main, argv)


if __name__ == '__main__':
    main()
