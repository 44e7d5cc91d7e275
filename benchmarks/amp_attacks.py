"""Is ``--amp`` worth it for attacks on a CPU? bf16 autocast against fp32, side by side.

For one ``CONFIG CHECKPOINT`` (an adversarial-training config: its training
attack is the PGD AT attack), in this process, alternating fp32 and bf16
``--rounds`` times:

- one PGD-``--steps`` adversarial-training iteration on a batch of
  ``--batch-size`` training images (``model.train_step``: the training
  attack, the clean and adversarial passes, backward and SGD step), with a
  plain ``OptimWrapper`` against ``CPUAmpOptimWrapper`` (what
  ``tools/train.py --amp`` uses on a CPU: bf16 autocast; the attack inside it
  goes through ``PrecisionSafeClassifier``, its survivors take one fp32
  step: ``fp32_polish``); the weights are restored
  before every iteration, so both time the same step;
- standard AutoAttack (the plug-in's, at the config's eps unless ``--eps``)
  on the seeded subset of ``--num-samples`` test images that ``tools/test.py
  --num-samples`` attacks, as ``RobustTestLoop(fp16=...)`` runs it: under
  bf16 autocast every member runs in fp32 (APGD, FAB-T and Square:
  ``fp32_parts``), every decision in fp32.

Prints the median (and fastest) seconds of each, the ratio bf16 / fp32 of
the medians (of the fastest runs; below 1: bf16 is faster), and the robust
accuracies of both AutoAttack runs (they must agree within 1 point:
tests/attacks/test_mixed_precision_strength.py). Time it alone: a 2-thread
job beside another busy process runs several times slower (on a shared
machine the fastest of several ``--rounds`` is the better estimate).

Example:
    python tools/train.py configs/demo/resnet18-w16_1xb64_digits_pgdat.py \\
        --work-dir work_dirs/pgdat --cfg-options train_cfg.max_epochs=4
    python benchmarks/amp_attacks.py \\
        configs/demo/resnet18-w16_1xb64_digits_pgdat.py work_dirs/pgdat/epoch_4.pth
"""

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='an adversarial-training config')
    parser.add_argument('checkpoint', help='its checkpoint')
    parser.add_argument(
        '--num-samples', type=int, default=64, help='test images AutoAttack attacks (default 64)'
    )
    parser.add_argument(
        '--batch-size', type=int, default=64, help='training batch of the AT iteration (default 64)'
    )
    parser.add_argument(
        '--steps', type=int, default=10, help='steps of the training PGD (default 10)'
    )
    parser.add_argument(
        '--eps',
        type=float,
        default=None,
        help="AutoAttack's eps, pixel units of 255 (default: the config's training eps)",
    )
    parser.add_argument('--seed', type=int, default=0, help='test subset and keys')
    parser.add_argument(
        '--rounds',
        type=int,
        default=1,
        help='timed rounds (fp32 then bf16, then bf16 first...); medians are printed',
    )
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--skip-autoattack', action='store_true', help='time the AT iteration only')
    args = parser.parse_args(argv)
    for key in ('num_samples', 'batch_size', 'steps', 'rounds', 'threads'):
        if getattr(args, key) < 1:
            parser.error(f'--{key.replace("_", "-")} must be >= 1')
    return args


def build(args):
    """The runner-free pieces: model with weights, cfg, train/test datasets."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import DATASETS, MODELS

    import nofrost_mm  # noqa: F401  (registers the plug-in)
    from nofrost_mm.utils import training_eps

    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    state = torch.load(args.checkpoint, map_location='cpu', weights_only=False)
    model.load_state_dict(state.get('state_dict', state))
    if cfg.get('channels_last'):
        model.to(memory_format=torch.channels_last)
    eps = args.eps if args.eps is not None else training_eps(cfg)
    if eps is None:
        raise ValueError(f'{args.config}: no training attack eps; pass --eps')
    train = DATASETS.build(cfg.train_dataloader.dataset)
    test = DATASETS.build(cfg.test_dataloader.dataset)
    return cfg, model, float(eps), train, test


def at_iteration(model, batch, amp: bool):
    """One AT ``train_step`` (fp32 or CPUAmpOptimWrapper), weights restored."""
    from mmengine.optim import OptimWrapper

    from nofrost_mm.engine.optim_wrappers import CPUAmpOptimWrapper

    saved = copy.deepcopy(model.state_dict())
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    wrapper = CPUAmpOptimWrapper(optimizer=optimizer) if amp else OptimWrapper(optimizer=optimizer)
    model.train()
    start = time.perf_counter()
    model.train_step(copy.deepcopy(batch), wrapper)
    seconds = time.perf_counter() - start
    model.load_state_dict(saved)
    return seconds


def autoattack(model, images, labels, keys, eps, amp: bool):
    """AutoAttack as RobustTestLoop(fp16=amp) runs it: (seconds, robust %, precision)."""
    from nofrost_mm.attacks import (
        AutoAttack,
        NormalizedClassifier,
        PrecisionSafeClassifier,
        attack_context,
        fp32_predict,
    )
    from nofrost_mm.attacks.mixed_precision import attack_precision

    attack = AutoAttack(eps=eps)
    with attack_context(model) as net:
        net = NormalizedClassifier.from_preprocessor(net).eval()
        correct = fp32_predict(net, images) == labels
        todo = correct.nonzero()[:, 0]
        start = time.perf_counter()
        with torch.enable_grad(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp):
            precision = attack_precision(attack, 'cpu')
            if len(todo):
                adv = attack(
                    PrecisionSafeClassifier(net) if amp else net,
                    images[todo],
                    labels[todo],
                    keys=keys[todo],
                )
                correct[todo] = fp32_predict(net, adv) == labels[todo]
        seconds = time.perf_counter() - start
    return seconds, 100.0 * correct.float().mean().item(), precision


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from mmengine.dataset import pseudo_collate

    from nofrost_mm.utils import sample_keys

    cfg, model, eps, train, test = build(args)
    attack = model.data_preprocessor.attack
    attack.steps = args.steps
    batch = pseudo_collate([train[i] for i in range(args.batch_size)])
    # the subset tools/test.py --num-samples attacks (RobustTestLoop's draw)
    subset = np.sort(
        np.random.default_rng(args.seed).choice(len(test), args.num_samples, replace=False)
    ).tolist()
    data = pseudo_collate([test[i] for i in subset])
    images = torch.stack(data['inputs']).float() / 255.0
    images = (
        images.contiguous(memory_format=torch.channels_last) if cfg.get('channels_last') else images
    )
    labels = torch.cat([d.gt_label for d in data['data_samples']])
    keys = sample_keys(args.seed, subset)
    from nofrost_mm.utils.machine import cpu_name

    cpu = cpu_name()
    print(
        f'amp_attacks on {cpu}, {args.threads} threads, torch {torch.__version__}: '
        f'{args.config}, PGD-{args.steps} AT batch {args.batch_size}, AutoAttack '
        f'eps {eps:g}/255 on {args.num_samples} test images, {args.rounds} round(s)',
        flush=True,
    )

    at_iteration(model, batch, False)  # warm-up (allocator, first-call costs)
    at_iteration(model, batch, True)
    times = {('at', False): [], ('at', True): [], ('aa', False): [], ('aa', True): []}
    robust, precision = {}, {}
    for r in range(args.rounds):
        order = (False, True) if r % 2 == 0 else (True, False)
        for amp in order:
            times[('at', amp)].append(at_iteration(model, batch, amp))
        if args.skip_autoattack:
            continue
        for amp in order:
            seconds, robust[amp], precision[amp] = autoattack(model, images, labels, keys, eps, amp)
            times[('aa', amp)].append(seconds)
            print(
                f'  round {r + 1}: AutoAttack {"bf16" if amp else "fp32"} '
                f'{seconds:.1f} s, robust {robust[amp]:.2f}%',
                flush=True,
            )

    print(
        '\n| measurement | fp32 s (fastest) | bf16 s (fastest) | bf16 / fp32 (fastest) '
        '| robust fp32 % | robust bf16 % |'
    )
    print('| --- | --- | --- | --- | --- | --- |')
    rows = [('at', f'PGD-{args.steps} AT iteration (batch {args.batch_size})')]
    if not args.skip_autoattack:
        rows.append(('aa', f'AutoAttack standard ({args.num_samples} images)'))
    for key, label in rows:
        t32, t16 = (statistics.median(times[(key, amp)]) for amp in (False, True))
        m32, m16 = (min(times[(key, amp)]) for amp in (False, True))
        accs = (
            [f'{robust[False]:.2f}', f'{robust[True]:.2f} ({precision[True]})']
            if key == 'aa'
            else ['-', '-']
        )
        print(
            f'| {label} | {t32:.2f} ({m32:.2f}) | {t16:.2f} ({m16:.2f}) | '
            f'{t16 / t32:.2f} ({m16 / m32:.2f}) | ' + ' | '.join(accs) + ' |'
        )
    if not args.skip_autoattack and robust[True] > robust[False] + 1:
        print(
            f'\nFAIL: bf16 AutoAttack leaves {robust[True] - robust[False]:.2f} '
            'points more robust than fp32 (bound: 1)',
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
