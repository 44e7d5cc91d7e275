"""What the command-line tools share, so each of them stays a thin script.

The launcher and config-override options, the work dir and dataloader
defaults of ``tools/train.py`` and ``tools/test.py``; the ``CONFIG
CHECKPOINT`` pairs of the analysis tools, parsed and named by one rule;
``--attacks none``; the argument set of the tools comparing checkpoints
(``decision_margin.py``, ``smoothness.py``); a tool's runner for one
checkpoint. Usage errors go through ``parser.error`` (exit status 2 with the
usage line); the package's other modules take values, never a command line.
"""

import argparse
import copy
import os
import os.path as osp
from typing import List, NamedTuple, Optional, Sequence

from mmengine.config import Config, ConfigDict, DictAction

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


def add_launcher_args(parser: argparse.ArgumentParser) -> None:
    """``--launcher`` and the ``--local-rank`` that torch's launcher passes."""
    parser.add_argument('--launcher', choices=list(LAUNCHERS), default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (torchrun sets LOCAL_RANK)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def add_cfg_options_arg(
    parser: argparse.ArgumentParser,
    help: str = 'override settings of the config (key=value; a list as key="[a,b]" or key=a,b)',
) -> None:
    """``--cfg-options key=value ...`` (mmengine's ``DictAction``)."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help=help)


def parse_launched(
    parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None
) -> argparse.Namespace:
    """Parse ``argv``; ``LOCAL_RANK`` from ``--local-rank`` unless set."""
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def set_work_dir(cfg: Config, work_dir: Optional[str], config: str) -> None:
    """``--work-dir``, else the config's own, else ``work_dirs/{config name}``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])


def set_dataloader_defaults(
    cfg: Config,
    fields: Sequence[str],
    no_pin_memory: bool = False,
    no_persistent_workers: Optional[bool] = None,
) -> None:
    """mmpretrain's tools' dataloader defaults under the config's settings.

    ``pin_memory`` and ``default_collate``; with ``no_persistent_workers``
    given (training) also ``persistent_workers`` where the loader has
    worker processes.

    Args:
        cfg (Config): The config (changed in place).
        fields (Sequence[str]): ``'train_dataloader'`` etc.
        no_pin_memory (bool): ``--no-pin-memory``. Defaults to False.
        no_persistent_workers (bool, optional): ``--no-persistent-workers``;
            None leaves ``persistent_workers`` to the config. Defaults to
            None.
    """
    defaults = dict(pin_memory=True, collate_fn=dict(type='default_collate'))
    if no_persistent_workers is not None:
        defaults['persistent_workers'] = True
    for field in fields:
        if cfg.get(field, None) is None:
            continue
        loader = ConfigDict(copy.deepcopy(defaults))
        loader.update(cfg[field])
        # persistent workers need worker processes
        if 'persistent_workers' in defaults and loader.get('num_workers', 0) == 0:
            loader.persistent_workers = False
        if no_pin_memory:
            loader.pin_memory = False
        if no_persistent_workers:
            loader.persistent_workers = False
        cfg[field] = loader


def attack_specs(values: Optional[Sequence[str]]) -> Optional[List[str]]:
    """The ``--attacks`` items: None when not given, [] for ``none``.

    Raises:
        ValueError: ``none`` together with attacks.
    """
    if values is None:
        return None
    if any(v.lower() == 'none' for v in values):
        if len(values) > 1:
            raise ValueError(
                f'--attacks: "none" cannot be combined with attacks, got {list(values)}'
            )
        return []
    return list(values)


class ModelPair(NamedTuple):
    """A ``CONFIG CHECKPOINT`` pair of the command line and its name."""

    name: str
    config: str
    checkpoint: str


def add_model_pairs_args(parser: argparse.ArgumentParser) -> None:
    """The ``CONFIG CHECKPOINT ...`` positionals and ``--labels``."""
    parser.add_argument(
        'models',
        nargs='+',
        metavar='CONFIG CHECKPOINT',
        help='config and checkpoint of each model, in pairs',
    )
    parser.add_argument(
        '--labels',
        nargs='+',
        help='a name per model (default: the config '
        "names, with the checkpoint's where one config comes twice)",
    )


def models_parser(description: str, out_help: str) -> argparse.ArgumentParser:
    """The parser of a tool that takes checkpoints side by side: the
    ``CONFIG CHECKPOINT`` pairs, ``--labels`` and a required ``--out``
    (``out_help`` says what it is); the tool adds its own options."""
    parser = argparse.ArgumentParser(description=description)
    add_model_pairs_args(parser)
    parser.add_argument('--out', required=True, help=out_help)
    return parser


def pair_names(pairs: Sequence[Sequence[str]], labels: Optional[Sequence[str]] = None) -> List[str]:
    """The names of ``(config, checkpoint)`` pairs: the one naming rule.

    The label given, else the config's file name without ``.py``; one
    config given twice gets each checkpoint's name in brackets, and names
    still equal are numbered (``2: name``).
    """

    def stem(path):
        return osp.splitext(osp.basename(path))[0]

    names = list(labels) if labels else [stem(config) for config, _ in pairs]
    if not labels:
        names = [
            f'{name} ({stem(ckpt)})' if names.count(name) > 1 else name
            for name, (_, ckpt) in zip(names, pairs)
        ]
    return [f'{i + 1}: {name}' if names.count(name) > 1 else name for i, name in enumerate(names)]


def model_pairs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> List[ModelPair]:
    """The checked, named pairs of :func:`add_model_pairs_args`.

    An odd number of paths or a ``--labels`` count that differs is a usage
    error; a missing config or checkpoint raises FileNotFoundError naming
    it (before any model is built).
    """
    if len(args.models) % 2:
        parser.error(
            f'models come in CONFIG CHECKPOINT pairs; got {len(args.models)} paths: {args.models}'
        )
    pairs = list(zip(args.models[::2], args.models[1::2]))
    if args.labels is not None and len(args.labels) != len(pairs):
        parser.error(f'--labels: {len(args.labels)} names for {len(pairs)} models')
    for config, checkpoint in pairs:
        if not osp.isfile(config):
            raise FileNotFoundError(f'config {config}: no such file')
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(
                f'checkpoint {checkpoint}: no such file (paired with config {config})'
            )
    return [
        ModelPair(name, config, checkpoint)
        for name, (config, checkpoint) in zip(pair_names(pairs, args.labels), pairs)
    ]


def load_model_configs(
    pairs: Sequence[ModelPair], cfg_options: Optional[dict] = None
) -> List[dict]:
    """``dict(name, stem, config, checkpoint, cfg)`` per pair, with
    ``--cfg-options`` merged into every config (no model is built)."""
    models = []
    for pair in pairs:
        cfg = Config.fromfile(pair.config)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        models.append(
            dict(pair._asdict(), cfg=cfg, stem=osp.splitext(osp.basename(pair.config))[0])
        )
    return models


def build_tool_runner(
    cfg: Config, checkpoint: str, work_dir: str, experiment_name: str, launcher: str, log_level: str
):
    """The runner an analysis tool tests one checkpoint with (the config's
    runner, NoFrostRunner by default; never resuming a training)."""
    from mmengine.registry import RUNNERS

    cfg.launcher, cfg.log_level = launcher, log_level
    cfg.work_dir, cfg.experiment_name = work_dir, experiment_name
    cfg.load_from, cfg.resume = checkpoint, False
    cfg.setdefault('runner_type', 'NoFrostRunner')
    return RUNNERS.build(cfg)


def then_leave_together(run, *args):
    """Run a tool's body, then let every rank leave together.

    The process group is shut down after the body has returned (not after an
    error: a barrier would then wait for ranks that may be gone).
    """
    result = run(*args)
    from .distributed import shutdown_distributed

    shutdown_distributed()
    return result


def add_tool_runner_args(parser: argparse.ArgumentParser) -> None:
    """``--cfg-options``, ``--log-level`` and the launcher options of the
    tools that test checkpoints through their configs' runners."""
    add_cfg_options_arg(parser, help='override settings of every model config (key=value)')
    parser.add_argument(
        '--log-level', default='WARNING', help="the runners' log level (INFO shows their logs)"
    )
    add_launcher_args(parser)


def check_at_least(
    parser: argparse.ArgumentParser, args: argparse.Namespace, **minimums: int
) -> None:
    """A usage error for an option below its minimum (None: not given)."""
    for key, minimum in minimums.items():
        value = getattr(args, key)
        if value is not None and value < minimum:
            parser.error(f'--{key.replace("_", "-")} must be >= {minimum}, got {value}')


def comparison_args(
    description: str,
    radius: str,
    radius_help: str,
    steps: int,
    steps_help: str,
    argv: Optional[Sequence[str]] = None,
):
    """Command line of the tools that draw checkpoints side by side.

    ``CONFIG CHECKPOINT`` pairs and ``--labels``, ``--out`` (a PNG),
    ``--json``, ``--num-samples`` (a seeded test subset, 0: all),
    ``--seed``, ``--batch-size``, the tool's radius option (pixel units of
    255, None when not given: the tool's default) and ``--steps``.

    Returns:
        tuple: The parser and the arguments, with ``labelled_models``
        (:class:`ModelPair` list).
    """
    parser = models_parser(description, 'output PNG file')
    parser.add_argument('--json', help='also write the summary numbers here')
    parser.add_argument(
        '--num-samples', type=int, default=500, help='seeded subset of the test set (0: all)'
    )
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument(radius, type=float, help=radius_help)
    parser.add_argument('--steps', type=int, default=steps, help=steps_help)
    args = parser.parse_args(argv)
    check_at_least(parser, args, num_samples=0, batch_size=1, steps=1)
    if not args.out.endswith('.png'):
        parser.error(f'--out must be a .png file, got {args.out}')
    value = getattr(args, radius.lstrip('-').replace('-', '_'))
    if value is not None and value <= 0:
        parser.error(f'{radius} must be > 0, got {value:g}')
    args.labelled_models = model_pairs(parser, args)
    return parser, args
