# Test (and evaluate) a checkpoint with a nofrost_mm (or any mmpretrain) config.
# Same command line as mmpretrain's tools/test.py.
import argparse
import faulthandler
import os.path as osp

import mmengine
from mmengine.config import Config
from mmengine.evaluator import DumpResults
from mmengine.registry import RUNNERS

from nofrost_mm.attacks import parse_attack
from nofrost_mm.evaluation.robust_test_config import ROBUST_LOOPS, robust_test_cfg
from nofrost_mm.utils import cli


def parse_args():
    parser = argparse.ArgumentParser(description='nofrost_mm test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='the directory to save the file containing evaluation metrics'
    )
    parser.add_argument('--out', help='the file to write results to (see --out-item)')
    parser.add_argument(
        '--out-item',
        choices=['metrics', 'pred'],
        help='whether --out gets the metrics or the predictions. Defaults to metrics.',
    )
    parser.add_argument(
        '--num-samples',
        type=int,
        help='evaluate a fixed random subset of N test samples (seeded by '
        'test_cfg.seed, default 0; the same in every process)',
    )
    parser.add_argument(
        '--attacks',
        nargs='+',
        help='attacks to run (replaces test_attacks): type names (PGD FGSM) '
        'or Python dict literals "{\'type\': \'PGD\', \'eps\': 8, '
        '\'steps\': 20}"; sizes in pixel units of 255. "none": no attack, '
        'the config\'s plain (clean) evaluation',
    )
    parser.add_argument(
        '--resume',
        nargs='?',
        const=True,
        default=False,
        help='continue a killed robust evaluation from its saved per-batch '
        'results: the newest one under --work-dir with these settings (a '
        'finished one is read back), or the robust_eval_state folder given; '
        'config, checkpoint, attacks, subset and number of processes must be '
        'those of the saved run (else an error names what differs)',
    )
    parser.add_argument(
        '--cascade',
        action='store_true',
        help='run each attack only on the survivors of the attacks before it '
        '(test_cfg.cascade=True): same worst case, cheaper, cumulative columns',
    )
    cli.add_cfg_options_arg(parser)
    parser.add_argument('--amp', action='store_true', help='enable automatic-mixed-precision test')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='whether to disable the pin_memory option in dataloaders.',
    )
    cli.add_launcher_args(parser)
    return cli.parse_launched(parser)


def merge_args(cfg, args):
    """Merge CLI arguments to config."""
    cfg.launcher = args.launcher
    cli.set_work_dir(cfg, args.work_dir, args.config)

    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint}: no such file')
    cfg.load_from = args.checkpoint

    if args.amp:
        cfg.test_cfg.fp16 = True

    cli.set_dataloader_defaults(cfg, ('test_dataloader',), args.no_pin_memory)

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    attacks = cli.attack_specs(args.attacks)
    if attacks == []:
        cfg.pop('test_attacks', None)
        if cfg.get('test_cfg', {}).get('type') in ROBUST_LOOPS:
            cfg.test_cfg.attacks = []  # a config's own loop: clean only
    elif attacks is not None:
        cfg.test_attacks = [parse_attack(a) for a in attacks]
    robust_test_cfg(cfg, args.num_samples)
    if cfg.get('test_cfg', {}).get('type') in ROBUST_LOOPS:
        # every robust evaluation keeps its per-batch results in its run folder
        cfg.test_cfg.setdefault('state_dir', 'auto')
        if args.resume:
            cfg.test_cfg.resume = args.resume
        if args.cascade:
            cfg.test_cfg.cascade = True
    elif args.resume or args.cascade:
        raise ValueError(
            '--resume and --cascade need a robust evaluation '
            '(test_attacks, --attacks or test_cfg.type='
            f"'RobustTestLoop'); this config's test_cfg is "
            f"{dict(cfg.get('test_cfg') or {})}"
        )
    return cfg


def main():
    # a fatal signal (a rare SIGABRT of one rank at gloo teardown, a segfault
    # in a kernel) prints the Python stack of every thread to stderr
    faulthandler.enable()
    args = parse_args()
    if args.out is None and args.out_item is not None:
        raise ValueError('--out-item needs --out FILE')

    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)

    import nofrost_mm  # noqa: F401  (registers NoFrostRunner)

    loop = cfg.get('test_cfg', {}).get('type')
    if loop in ROBUST_LOOPS:
        # bad attack configs fail here, before the model is built or loaded
        from nofrost_mm.attacks import build_attacks
        from nofrost_mm.evaluation.robustness_report.attack_entries import split_report_keys

        attacks = cfg.test_cfg.get('attacks', ())
        if loop == 'RobustnessReportLoop':  # entries with restarts / after
            attacks = split_report_keys(attacks)[0]
        build_attacks(attacks)
    cfg.setdefault('runner_type', 'NoFrostRunner')
    runner = RUNNERS.build(cfg)

    if args.out and args.out_item == 'pred':
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))

    metrics = runner.test()

    if args.out and args.out_item in ('metrics', None) and runner.rank == 0:
        warnings = getattr(runner.test_loop, 'warnings', None)
        if warnings is not None:  # RobustTestLoop: keep its guard's verdict
            metrics = dict(
                metrics,
                warnings=warnings,
                # and what each attack ran with
                attack_settings=runner.test_loop.attack_settings,
            )
        mmengine.dump(metrics, args.out)
        runner.logger.info(f'metrics written to {args.out}')
    from nofrost_mm.utils import shutdown_distributed

    shutdown_distributed()


if __name__ == '__main__':
    main()
