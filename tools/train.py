# Train a model with a nofrost_mm (or any mmpretrain) config.
# Same command line as mmpretrain's tools/train.py.
import argparse
import faulthandler
import os.path as osp

from mmengine.config import Config
from mmengine.registry import RUNNERS

from nofrost_mm.utils import cli


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='If specify checkpoint path, resume from it, while if not '
        'specify, try to auto resume from the latest checkpoint '
        'in the work directory.',
    )
    parser.add_argument(
        '--amp', action='store_true', help='enable automatic-mixed-precision training'
    )
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='whether not to evaluate the checkpoint during training',
    )
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='whether to auto scale the learning rate according to the '
        'actual batch size and the original batch size.',
    )
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='whether to disable the pin_memory option in dataloaders.',
    )
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='whether to disable the persistent_workers option in dataloaders.',
    )
    cli.add_cfg_options_arg(parser)
    cli.add_launcher_args(parser)
    return cli.parse_launched(parser)


def merge_args(cfg, args):
    """Merge CLI arguments to config."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    cfg.launcher = args.launcher
    cli.set_work_dir(cfg, args.work_dir, args.config)

    if args.amp is True:
        # fp16 with a loss scaler on a GPU, bf16 on a CPU (mmengine's
        # AmpOptimWrapper refuses one); AGC keeps its AMP twin
        import torch

        from nofrost_mm.engine.optim_wrappers import amp_optim_wrapper_type

        cfg.optim_wrapper.type = amp_optim_wrapper_type(
            cfg.optim_wrapper.get('type'), torch.cuda.is_available()
        )
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if osp.isdir(args.resume):
            raise FileNotFoundError(
                f'--resume {args.resume} is a folder, not a checkpoint file: '
                'to continue the newest checkpoint of a work dir, give '
                f'`--work-dir {args.resume} --resume`'
            )
        if not osp.isfile(args.resume):
            raise FileNotFoundError(
                f'--resume {args.resume}: no such checkpoint file. Give an '
                'existing epoch_N.pth, or --resume alone to continue the '
                f'newest checkpoint in the work dir ({cfg.work_dir})'
            )
        cfg.resume = True
        cfg.load_from = args.resume

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg:
            raise KeyError(
                '--auto-scale-lr needs `auto_scale_lr = dict(base_batch_size=N)` in the config'
            )
        cfg.auto_scale_lr.enable = True

    cli.set_dataloader_defaults(
        cfg,
        ('train_dataloader', 'val_dataloader', 'test_dataloader'),
        args.no_pin_memory,
        args.no_persistent_workers,
    )

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    return cfg


def build_runner(cfg):
    """Build the config's runner; the CPU-capable NoFrostRunner by default."""
    import nofrost_mm  # noqa: F401  (registers NoFrostRunner)

    cfg.setdefault('runner_type', 'NoFrostRunner')
    return RUNNERS.build(cfg)


def main():
    # a fatal signal (a rare SIGABRT of one rank at gloo teardown, a segfault
    # in a kernel) prints the Python stack of every thread to stderr
    faulthandler.enable()
    args = parse_args()
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    # before anything is built: a new run never overwrites an earlier one
    # (NoFrostRunner.train checks again, for mmpretrain's own tools/train.py)
    from nofrost_mm.engine.runner.checkpoint_io import refuse_reused_work_dir

    refuse_reused_work_dir(cfg)
    runner = build_runner(cfg)
    runner.train()
    from nofrost_mm.utils import shutdown_distributed

    shutdown_distributed()


if __name__ == '__main__':
    main()
