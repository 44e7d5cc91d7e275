"""Issue 35's table: robust accuracy of each attack in fp32, under fp16 and under bf16 autocast.

For one ``CONFIG CHECKPOINT``, the seeded subset of ``--num-samples`` test
images that ``tools/test.py --num-samples`` attacks, and the model's logits
multiplied by each ``--temps`` T (T = 10: as confident as a well-trained net,
where naive fp16 input gradients underflow; the same as multiplying the
head's weights and bias by T), every attack runs as ``RobustTestLoop(fp16=...)``
runs it: under autocast through a :class:`PrecisionSafeClassifier` when it
is safe in that precision (else in fp32, logged once), the final
"misclassified?" decision in fp32, survivors attacked again in fp32 after an
fp16 overflow. Prints one Markdown row per (T, attack): the robust accuracy
in each precision, the precision each ran in, and the largest excess of a
reduced precision over fp32 (issue 35's bound: at most 1 point). Exits 1
when a row exceeds it.

The attack budgets are those of the issue's table (PGD-10, APGD 20
iterations, FAB-T 10 iterations, 3 target classes for the targeted ones,
Square 300 queries); ``--attacks`` adds ``AutoAttack`` (standard, its full
budget: slow on a CPU).

:func:`strength_rows` returns the rows for a model, its samples' device and
the precisions asked (``benchmarks/gpu_check.py`` can call it on CUDA); :func:`load_model` and
:func:`test_subset` build its inputs.

Example:
    python tools/train.py configs/demo/resnet18-w16_1xb64_digits.py \\
        --work-dir work_dirs/std5 --cfg-options train_cfg.max_epochs=5 \\
        param_scheduler.T_max=5
    nice -n 10 python benchmarks/amp_strength_table.py \\
        configs/demo/resnet18-w16_1xb64_digits.py work_dirs/std5/epoch_5.pth --eps 16
"""

import argparse
import copy
import logging
import sys
import time
from typing import Dict, List, Sequence

import numpy as np
import torch
import torch.nn as nn

BOUND = 1.0  # points: reduced precision may leave at most this much more robust
DTYPES = dict(fp16=torch.float16, bf16=torch.bfloat16)


def make_attacks(eps: float) -> Dict[str, callable]:
    """The table's attacks by name (factories: a fresh attack per run)."""
    from nofrost_mm.attacks import APGDAttack, AutoAttack, FABAttack, PGDAttack, SquareAttack

    return {
        'PGD-10': lambda: PGDAttack(eps=eps, steps=10),
        'APGD-CE (20 it.)': lambda: APGDAttack(eps=eps, steps=20),
        'FAB-T (10 it.)': lambda: FABAttack(eps=eps, steps=10, n_target_classes=3),
        'APGD-T (20 it.)': lambda: APGDAttack(
            eps=eps, steps=20, loss='dlr-targeted', n_target_classes=3
        ),
        'Square (300 q.)': lambda: SquareAttack(eps=eps, n_queries=300),
        'AutoAttack': lambda: AutoAttack(eps=eps),
    }


DEFAULT_ATTACKS = (
    'PGD-10',
    'APGD-CE (20 it.)',
    'FAB-T (10 it.)',
    'APGD-T (20 it.)',
    'Square (300 q.)',
)


class Sharpened(nn.Module):
    """``net``'s logits times ``t``.

    Args:
        net (nn.Module): Maps [0, 1] images to logits.
        t (float): The factor.
    """

    def __init__(self, net: nn.Module, t: float):
        super().__init__()
        self.net, self.t = net, t

    def forward(self, x):
        return self.net(x) * self.t


def load_model(config: str, checkpoint: str, device: str = 'cpu') -> nn.Module:
    """The config's classifier with the checkpoint's weights, as a frozen
    eval-mode :class:`NormalizedClassifier` of [0, 1] images."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import nofrost_mm  # noqa: F401  (registers the plug-in)
    from nofrost_mm.attacks import NormalizedClassifier

    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    state = torch.load(checkpoint, map_location='cpu', weights_only=False)
    model.load_state_dict(state.get('state_dict', state))
    model.to(device).eval().requires_grad_(False)
    return NormalizedClassifier.from_preprocessor(model).eval()


def test_subset(config: str, num_samples: int, seed: int = 0, device: str = 'cpu'):
    """(images in [0, 1], labels, keys) of the seeded subset that
    ``tools/test.py --num-samples`` attacks (RobustTestLoop's draw)."""
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import DATASETS

    from nofrost_mm.utils import sample_keys

    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    test = DATASETS.build(cfg.test_dataloader.dataset)
    if not 1 <= num_samples <= len(test):
        raise ValueError(
            f'--num-samples must be in [1, {len(test)}] (the test set of '
            f'{config}), got {num_samples}'
        )
    subset = np.sort(
        np.random.default_rng(seed).choice(len(test), num_samples, replace=False)
    ).tolist()
    data = pseudo_collate([test[i] for i in subset])
    images = torch.stack(data['inputs']).float().div_(255.0).to(device)
    labels = torch.cat([d.gt_label for d in data['data_samples']]).to(device)
    return images, labels, sample_keys(seed, subset).to(device)


def robust_accuracy(net, make_attack, images, labels, keys, dtype=None):
    """(robust %, precision, seconds) of one attack as RobustTestLoop runs it."""
    from nofrost_mm.attacks import PrecisionSafeClassifier, fp32_predict
    from nofrost_mm.attacks.mixed_precision import safe_precision
    from nofrost_mm.utils.log_once import LogOnce

    device_type = images.device.type
    attack = make_attack()
    correct = fp32_predict(net, images) == labels
    todo = correct.nonzero()[:, 0]
    with torch.autocast(device_type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        precision = safe_precision(attack, device_type, LogOnce(logging.INFO))
    start = time.perf_counter()
    if len(todo):
        model = net if precision == 'fp32' else PrecisionSafeClassifier(net)
        with (
            torch.enable_grad(),
            torch.autocast(device_type, dtype=dtype or torch.bfloat16, enabled=precision != 'fp32'),
        ):
            adv = attack(model, images[todo], labels[todo], keys=keys[todo])
        correct[todo] = fp32_predict(net, adv) == labels[todo]
        if precision != 'fp32' and model.overflows.count:  # the loop's fp32 re-run
            precision += '+fp32'
            todo = correct.nonzero()[:, 0]
            if len(todo):
                with torch.enable_grad():
                    adv = make_attack()(net, images[todo], labels[todo], keys=keys[todo])
                correct[todo] = fp32_predict(net, adv) == labels[todo]
    if images.is_cuda:
        torch.cuda.synchronize()
    return 100.0 * correct.float().mean().item(), precision, time.perf_counter() - start


def strength_rows(
    net,
    images,
    labels,
    keys,
    precisions: Sequence[str] = ('fp16', 'bf16'),
    temps: Sequence[float] = (10.0, 3.0),
    attacks: Sequence[str] = DEFAULT_ATTACKS,
    eps: float = 16.0,
    progress=None,
) -> List[dict]:
    """The table's rows: each attack in fp32 and under each of ``precisions``.

    Args:
        net (nn.Module): Maps [0, 1] images to logits (:func:`load_model`).
        images, labels, keys (torch.Tensor): The samples (:func:`test_subset`),
            on the device to run on.
        precisions (Sequence[str]): 'fp16' and/or 'bf16' (autocast on the
            images' device; empty: fp32 only). Defaults to both.
        temps (Sequence[float]): Factors of the logits. Defaults to (10, 3).
        attacks (Sequence[str]): Names in :func:`make_attacks`.
        eps (float): L-inf radius, pixel units of 255. Defaults to 16.
        progress (Callable, optional): Called with each row as it is done.

    Returns:
        list[dict]: Per (T, attack): ``T``, ``attack``, ``fp32`` (robust %),
        ``fp32_s`` (seconds) and, for each of ``precisions``, the same
        (``bf16``, ``bf16_s``) with what it ran in (``bf16_ran_in``).
    """
    factories = make_attacks(eps)
    unknown = set(attacks) - set(factories)
    if unknown:
        raise ValueError(f'unknown attacks {sorted(unknown)}; allowed: {list(factories)}')
    if not set(precisions) <= {'fp16', 'bf16'}:
        raise ValueError(f"precisions must be among ('fp16', 'bf16'), got {precisions!r}")
    rows = []
    for t in temps:
        sharp = Sharpened(net, t).eval()
        for name in attacks:
            row = dict(T=t, attack=name)
            row['fp32'], _, row['fp32_s'] = robust_accuracy(
                sharp, factories[name], images, labels, keys
            )
            for precision in precisions:
                row[precision], row[f'{precision}_ran_in'], row[f'{precision}_s'] = robust_accuracy(
                    sharp, factories[name], images, labels, keys, DTYPES[precision]
                )
            rows.append(row)
            if progress is not None:
                progress(row)
    return rows


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the checkpoint\'s config')
    parser.add_argument('checkpoint', help='a checkpoint of it')
    parser.add_argument('--num-samples', type=int, default=128, help='test images (default 128)')
    parser.add_argument(
        '--eps', type=float, default=16.0, help='L-inf radius, pixel units of 255 (default 16)'
    )
    parser.add_argument(
        '--temps',
        type=float,
        nargs='+',
        default=[10.0, 3.0],
        help='factors of the logits (default 10 3)',
    )
    parser.add_argument(
        '--attacks',
        nargs='+',
        default=list(DEFAULT_ATTACKS),
        help=f'default: {" ".join(DEFAULT_ATTACKS)}; also AutoAttack',
    )
    parser.add_argument(
        '--precisions',
        nargs='+',
        default=['fp16', 'bf16'],
        choices=['fp16', 'bf16'],
        help='reduced precisions (default both)',
    )
    parser.add_argument('--seed', type=int, default=0, help='test subset and keys')
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error('--threads must be >= 1')
    unknown = set(args.attacks) - set(make_attacks(8.0))
    if unknown:
        parser.error(f'--attacks: unknown {sorted(unknown)}; allowed: {list(make_attacks(8.0))}')
    return args


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    images, labels, keys = test_subset(args.config, args.num_samples, args.seed)
    net = load_model(args.config, args.checkpoint)
    from nofrost_mm.utils.machine import cpu_name

    cpu = cpu_name()
    print(
        f'amp_strength_table on {cpu}, {args.threads} threads, torch {torch.__version__}: '
        f'{args.config}, {args.num_samples} test images (seed {args.seed}), eps '
        f'{args.eps:g}/255, logits x {" and x".join(f"{t:g}" for t in args.temps)}; '
        'robust accuracy %, attack under CPU autocast, final check fp32',
        flush=True,
    )
    cols = args.precisions
    rows = strength_rows(
        net,
        images,
        labels,
        keys,
        cols,
        args.temps,
        args.attacks,
        args.eps,
        progress=lambda r: print(f'  {r}', flush=True),
    )
    print(
        '\n| T | attack | fp32 | '
        + ' | '.join(f'{c} autocast (ran in)' for c in cols)
        + ' | largest excess | seconds fp32 / '
        + ' / '.join(cols)
        + ' |'
    )
    print('| --- | --- | --- | ' + ' | '.join('---' for _ in cols) + ' | --- | --- |')
    worst = -100.0
    for row in rows:
        t, name = row['T'], row['attack']
        excess = max(row[c] - row['fp32'] for c in cols)
        worst = max(worst, excess)
        print(
            f'| {t:g} | {name} | {row["fp32"]:.1f} | '
            + ' | '.join(f'{row[c]:.1f} ({row[f"{c}_ran_in"]})' for c in cols)
            + f' | {excess:+.1f} | {row["fp32_s"]:.1f} / '
            + ' / '.join(f'{row[f"{c}_s"]:.1f}' for c in cols)
            + ' |'
        )
    if worst > BOUND:
        print(
            f'\nFAIL: a reduced precision leaves {worst:.1f} points more robust than '
            f'fp32 (bound: {BOUND:g})',
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
