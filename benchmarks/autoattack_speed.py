"""The plug-in's standard AutoAttack against the reference implementation, side by side.

For every ``CONFIG CHECKPOINT`` pair, loads the test split as ``tools/test.py``
does, takes the fixed seeded subset of ``--num-samples`` images that
``RobustTestLoop(num_samples=..., seed=...)`` (and ``tools/demo.py``'s
AutoAttack run) attacks, and runs on the same ``NormalizedClassifier``, one
after the other in this process:

- the reference, Croce & Hein's ``pyautoattack`` 0.2.0 (fra31/auto-attack),
  ``AutoAttack(version='standard', seed=0).run_standard_evaluation`` with one
  batch holding every image;
- the plug-in's ``AutoAttack`` (the same members and settings, batched
  targets, vectorised Square, eval BatchNorms folded into their convs),
  with the per-sample keys of the evaluation loop (``sample_keys(seed,
  dataset indices)``).

The plug-in runs in the config's layout (channels-last model and images
when it sets ``channels_last = True``, as ``tools/test.py`` runs them; the
same weights); the reference cannot take channels-last images (its APGD
calls ``grad.view``), so it gets the contiguous model and images. With
``--layout contiguous`` both run contiguous.

Prints per model the time of each, the ratio reference / plug-in (target
>= 2.0; with ``--rounds N`` the medians of N rounds that alternate which one
goes first), both robust accuracies (target: within one image) and the images
one breaks that the other does not. The eps is the config's AutoAttack
``test_attacks`` entry unless ``--eps`` is given.

Example:
    pip install --no-deps pyautoattack==0.2.0
    python benchmarks/autoattack_speed.py \\
        configs/demo/resnet18-w16_1xb64_digits_pgdat.py BN_AT.pth \\
        configs/demo/nf-resnet18-w16_1xb64_digits_pgdat.py NF_AT.pth \\
        --num-samples 100 --threads 2
"""

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'pairs',
        nargs='+',
        metavar='CONFIG CHECKPOINT',
        help='config and checkpoint, one pair per model',
    )
    parser.add_argument('--num-samples', type=int, default=100)
    parser.add_argument(
        '--seed', type=int, default=0, help='subset and attack seed (test_cfg.seed)'
    )
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument(
        '--rounds',
        type=int,
        default=1,
        help='timed rounds of both, alternating which goes first; '
        'the ratio is the median of the rounds\' ratios',
    )
    parser.add_argument(
        '--eps',
        type=float,
        default=None,
        help="pixel units of 255; default the config's AutoAttack eps",
    )
    parser.add_argument(
        '--layout',
        choices=['config', 'contiguous'],
        default='config',
        help="the plug-in's model and image layout: the config's "
        "channels_last, or contiguous as the reference's",
    )
    parser.add_argument('--out', default=None, help='write the results as JSON')
    args = parser.parse_args(argv)
    if len(args.pairs) % 2:
        parser.error('give CONFIG CHECKPOINT pairs')
    if args.num_samples < 1 or args.threads < 1 or args.rounds < 1:
        parser.error('--num-samples, --threads and --rounds must be >= 1')
    args.pairs = list(zip(args.pairs[::2], args.pairs[1::2]))
    return args


def config_autoattack_eps(cfg):
    """The eps of the config's AutoAttack test attack (its own, else the
    training eps it follows, as ``tools/test.py`` resolves it)."""
    from nofrost_mm.utils.training_eps import follow_training_eps, training_eps

    for entry in follow_training_eps(list(cfg.get('test_attacks') or []), training_eps(cfg)):
        if isinstance(entry, dict) and entry.get('type') == 'AutoAttack' and 'eps' in entry:
            return float(entry['eps'])
    raise SystemExit(
        'the config has no AutoAttack entry with an eps in test_attacks '
        'and no data_preprocessor.eps; give --eps'
    )


def load(config, checkpoint, num_samples, seed):
    """The classifier on [0, 1] images, the seeded subset and its indices."""
    sys.path.insert(0, str(REPO_ROOT))
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    from mmpretrain.registry import DATASETS, MODELS

    import nofrost_mm  # noqa: F401
    from nofrost_mm.attacks import NormalizedClassifier

    init_default_scope('mmpretrain')
    cfg = Config.fromfile(config)
    # the Runner's merge: a top-level data_preprocessor fills the model's
    cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    model = MODELS.build(cfg.model).eval()
    load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
    model.requires_grad_(False)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    if num_samples > len(dataset):
        raise SystemExit(f'--num-samples {num_samples} > {len(dataset)} test images')
    # RobustTestLoop's subset
    rng = np.random.default_rng(seed)
    subset = np.sort(rng.choice(len(dataset), num_samples, replace=False)).tolist()
    items = [dataset[i] for i in subset]
    images = torch.stack([it['inputs'] for it in items]).float().div(255)
    labels = torch.cat([it['data_samples'].gt_label for it in items])
    pre = model.data_preprocessor
    net = NormalizedClassifier(
        model,
        pre.mean.flatten().tolist(),
        pre.std.flatten().tolist(),
        to_rgb=bool(getattr(pre, '_channel_conversion', False)),
    ).eval()
    return cfg, net, images, labels, torch.tensor(subset)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(REPO_ROOT))
    from pyautoattack import AutoAttack as ReferenceAutoAttack

    from nofrost_mm.attacks import AutoAttack
    from nofrost_mm.utils.sample_random import sample_keys

    results = []
    for config, checkpoint in args.pairs:
        cfg, net, x, y, indices = load(config, checkpoint, args.num_samples, args.seed)
        eps = args.eps if args.eps is not None else config_autoattack_eps(cfg)
        with torch.no_grad():
            correct = net(x).argmax(1) == y

        channels_last = args.layout == 'config' and bool(cfg.get('channels_last', False))
        layout = 'channels-last' if channels_last else 'contiguous'
        ours_net, ours_x = net, x
        if channels_last:
            ours_net = copy.deepcopy(net).to(memory_format=torch.channels_last)
            ours_x = x.contiguous(memory_format=torch.channels_last)

        def reference():
            ref = ReferenceAutoAttack(
                net, norm='Linf', eps=eps / 255.0, version='standard', seed=args.seed, device='cpu'
            )
            return ref.run_standard_evaluation(x, y, batch_size=len(x))[0]

        def plugin():
            return AutoAttack(eps=eps, seed=args.seed)(
                ours_net, ours_x, y, keys=sample_keys(args.seed, indices)
            )

        # rounds alternate which one goes first (a VM's speed drifts); the
        # ratio is the median of the rounds' ratios
        seconds = {'reference': [], 'plugin': []}
        for r in range(args.rounds):
            for name, run in (
                (('reference', reference), ('plugin', plugin))
                if r % 2 == 0
                else (('plugin', plugin), ('reference', reference))
            ):
                start = time.perf_counter()
                out = run()
                seconds[name].append(time.perf_counter() - start)
                if r == 0:
                    if name == 'reference':
                        ref_adv = out
                    else:
                        adv = out
        with torch.no_grad():
            ref_robust = net(ref_adv).argmax(1) == y
            robust = net(adv).argmax(1) == y
        assert float((adv - x).abs().max()) <= eps / 255.0 + 1e-6
        ratios = [a / b for a, b in zip(seconds['reference'], seconds['plugin'])]
        reference_seconds = float(np.median(seconds['reference']))
        plugin_seconds = float(np.median(seconds['plugin']))

        row = dict(
            config=config,
            checkpoint=checkpoint,
            eps=eps,
            num_samples=len(x),
            threads=args.threads,
            plugin_layout=layout,
            clean=100.0 * correct.float().mean().item(),
            rounds=args.rounds,
            reference_seconds=reference_seconds,
            plugin_seconds=plugin_seconds,
            ratio=float(np.median(ratios)),
            round_ratios=ratios,
            reference_robust=100.0 * ref_robust.float().mean().item(),
            plugin_robust=100.0 * robust.float().mean().item(),
            broken_by_reference_only=int((robust & ~ref_robust).sum()),
            broken_by_plugin_only=int((ref_robust & ~robust).sum()),
        )
        results.append(row)
        print(
            f'{Path(config).stem} ({len(x)} images, eps {eps:g}/255, '
            f'{args.threads} threads, plug-in {layout}, reference contiguous): '
            f'clean {row["clean"]:.1f}%',
            flush=True,
        )
        print(
            f'  reference {reference_seconds:.1f} s, plug-in {plugin_seconds:.1f} s (medians of '
            f'{args.rounds} rounds), ratio reference / plug-in {row["ratio"]:.2f} '
            f'(target >= 2.0; rounds {", ".join(f"{v:.2f}" for v in ratios)})'
        )
        print(
            f'  robust accuracy: reference {row["reference_robust"]:.1f}%, '
            f'plug-in {row["plugin_robust"]:.1f}%; broken by the reference only '
            f'{row["broken_by_reference_only"]}, by the plug-in only '
            f'{row["broken_by_plugin_only"]}',
            flush=True,
        )
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == '__main__':
    main()
