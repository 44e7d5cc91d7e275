"""Smoothness of classifiers (the NoFrost paper's input-gradient analysis).

For each checkpoint, on a seeded subset of the config's test set, draws the
distribution of (a) the L1 norm of the input gradient of the cross-entropy
loss (the first-order loss increase per unit of L-inf radius) and (b) a
local Lipschitz estimate ``max ||f(x') - f(x)||_1 / ||x' - x||_inf`` over the
eps ball (Yang et al. 2020), and prints summary numbers. Smaller is smoother.

Usage:
    python tools/analysis_tools/smoothness.py \
        CONFIG CKPT [CONFIG CKPT ...] --labels BN-AT NoFrost \
        --out smooth.png [--json smooth.json] [--num-samples 500] [--eps 8]
"""
import argparse
import json

import torch


def parse_args():
    parser = argparse.ArgumentParser(description='Input-gradient / Lipschitz plots')
    parser.add_argument('models', nargs='+',
                        help='pairs of config file and checkpoint')
    parser.add_argument('--labels', nargs='+', help='a name per checkpoint')
    parser.add_argument('--out', required=True, help='output PNG file')
    parser.add_argument('--json', help='also write the summary numbers here')
    parser.add_argument('--num-samples', type=int, default=500,
                        help='seeded subset of the test set (0: all)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--eps', type=float, default=8.,
                        help='radius of the Lipschitz estimate, pixel units of 255')
    parser.add_argument('--steps', type=int, default=10,
                        help='ascent steps of the Lipschitz estimate')
    parser.add_argument('--batch-size', type=int, default=128)
    args = parser.parse_args()
    if len(args.models) % 2:
        raise SystemExit('models: give CONFIG CHECKPOINT pairs, got an odd '
                         f'number of paths ({len(args.models)})')
    if args.labels is not None and len(args.labels) != len(args.models) // 2:
        raise SystemExit(f'--labels: {len(args.labels)} names for '
                         f'{len(args.models) // 2} checkpoints')
    if args.num_samples < 0 or args.eps <= 0 or args.steps < 1:
        raise SystemExit('--num-samples >= 0, --eps > 0 and --steps >= 1')
    if not args.out.endswith('.png'):
        raise SystemExit(f'--out must be a .png file, got {args.out}')
    return args


def main():
    args = parse_args()
    from nofrost_mm.evaluation import robustness_analysis as ra
    pairs = list(zip(args.models[::2], args.models[1::2]))
    labels = args.labels or [ckpt for _, ckpt in pairs]
    results = {}
    for label, (config, ckpt) in zip(labels, pairs):
        net, cfg = ra.load_classifier(config, ckpt)
        images, targets = ra.load_test_images(cfg, args.num_samples or None,
                                              args.seed)
        print(f'{label}: input gradients of {len(images)} samples')
        grad = ra.input_gradient_norms(net, images, targets, args.batch_size)
        print(f'{label}: local Lipschitz estimates (eps {args.eps:g}/255)')
        lip = ra.local_lipschitz(net, images, args.eps, args.steps,
                                 args.batch_size, args.seed)
        results[label] = dict(grad=grad, lipschitz=lip)

    summary = {label: dict(input_grad_l1=ra.summary(r['grad']),
                           local_lipschitz=ra.summary(r['lipschitz']))
               for label, r in results.items()}
    for label, s in summary.items():
        g, lip = s['input_grad_l1'], s['local_lipschitz']
        print(f"{label}: input-gradient L1 median {g['median']:.4g} mean "
              f"{g['mean']:.4g}; local Lipschitz (eps {args.eps:g}) median "
              f"{lip['median']:.4g} mean {lip['mean']:.4g}")
    plot(results, args)
    print(f'figure written to {args.out}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(eps=args.eps, models=summary), f, indent=2)


def plot(results, args):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, xlabel in (
            (axes[0], 'grad', '||grad_x CE||_1 (x in [0, 1])'),
            (axes[1], 'lipschitz',
             f"max ||f(x')-f(x)||_1 / ||x'-x||_inf, eps {args.eps:g}/255")):
        values = torch.cat([r[key] for r in results.values()]).clamp_min(1e-12)
        bins = torch.logspace(values.log10().min().item(),
                              values.log10().max().item() + 1e-6, 40).tolist()
        for label, r in results.items():
            ax.hist(r[key].clamp_min(1e-12).tolist(), bins=bins, alpha=0.5,
                    label=label)
        ax.set(xscale='log', xlabel=xlabel, ylabel='samples')
        ax.legend()
    axes[0].set_title('input-gradient norm (clean)')
    axes[1].set_title('local Lipschitz estimate')
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)


if __name__ == '__main__':
    main()
