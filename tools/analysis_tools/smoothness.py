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

The Lipschitz radius defaults to the configs' training eps (8/255 for
standard models); it is printed and written to the JSON.
"""

import torch

# the Lipschitz radius of standard models (CIFAR's 8/255)
DEFAULT_EPS = 8.0


def parse_args(argv=None):
    from nofrost_mm.evaluation import robustness_analysis as ra
    from nofrost_mm.utils.cli import comparison_args

    _, args = comparison_args(
        'Input-gradient / Lipschitz plots',
        '--eps',
        'radius of the Lipschitz estimate, pixel units of 255 (default: the '
        "configs' training eps, else 8)",
        10,
        'ascent steps of the Lipschitz estimate',
        argv,
    )
    args.eps, args.eps_source = ra.analysis_radius(
        args.eps, '--eps', args.labelled_models, DEFAULT_EPS
    )
    return args


def main():
    args = parse_args()
    from nofrost_mm.evaluation import robustness_analysis as ra

    print(f'local Lipschitz radius: eps {args.eps:g}/255 ({args.eps_source})')

    def measure(label, net, images, targets):
        print(f'{label}: input gradients of {len(images)} samples')
        grad = ra.input_gradient_norms(net, images, targets, args.batch_size)
        print(f'{label}: local Lipschitz estimates (eps {args.eps:g}/255)')
        lip = ra.local_lipschitz(net, images, args.eps, args.steps, args.batch_size, args.seed)
        return dict(grad=grad, lipschitz=lip)

    results = ra.measure_models(args, measure)

    summary = {
        label: dict(input_grad_l1=ra.summary(r['grad']), local_lipschitz=ra.summary(r['lipschitz']))
        for label, r in results.items()
    }
    for label, s in summary.items():
        g, lip = s['input_grad_l1'], s['local_lipschitz']
        print(
            f"{label}: input-gradient L1 median {g['median']:.4g} mean "
            f"{g['mean']:.4g}; local Lipschitz (eps {args.eps:g}) median "
            f"{lip['median']:.4g} mean {lip['mean']:.4g}"
        )
    ra.save_comparison(
        args, plot(results, args), dict(eps=args.eps, eps_source=args.eps_source, models=summary)
    )


def plot(results, args):
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, xlabel in (
        (axes[0], 'grad', '||grad_x CE||_1 (x in [0, 1])'),
        (axes[1], 'lipschitz', f"max ||f(x')-f(x)||_1 / ||x'-x||_inf, eps {args.eps:g}/255"),
    ):
        values = torch.cat([r[key] for r in results.values()]).clamp_min(1e-12)
        bins = torch.logspace(
            values.log10().min().item(), values.log10().max().item() + 1e-6, 40
        ).tolist()
        for label, r in results.items():
            ax.hist(r[key].clamp_min(1e-12).tolist(), bins=bins, alpha=0.5, label=label)
        ax.set(xscale='log', xlabel=xlabel, ylabel='samples')
        ax.legend()
    axes[0].set_title('input-gradient norm (clean)')
    axes[1].set_title('local Lipschitz estimate')
    return fig


if __name__ == '__main__':
    main()
