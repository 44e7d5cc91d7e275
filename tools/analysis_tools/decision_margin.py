"""Decision margins of classifiers (the NoFrost paper's margin analysis).

For each checkpoint, on a seeded subset of the config's test set, draws the
distribution of (a) the L-inf distance to the decision boundary along the
adversarial (PGD) direction and (b) the logit margin ``z_y - max_{j!=y} z_j``,
one colour per checkpoint, and prints summary numbers. Larger margins mean a
model that needs larger perturbations to be fooled.

Usage:
    python tools/analysis_tools/decision_margin.py \
        CONFIG CKPT [CONFIG CKPT ...] --labels BN-AT NoFrost \
        --out margin.png [--json margin.json] [--num-samples 500] [--eps-max 32]

The search radius defaults to twice the configs' training eps (32/255 for
standard models); it is printed and written to the JSON.
"""

import math

import torch

# the search radius of standard models
DEFAULT_EPS_MAX = 32.0


def parse_args(argv=None):
    from nofrost_mm.evaluation import robustness_analysis as ra
    from nofrost_mm.utils.cli import comparison_args

    _, args = comparison_args(
        'Decision-margin plots',
        '--eps-max',
        'search radius, pixel units of 255 (default: twice the configs\' '
        'training eps, at most 255; else 32)',
        20,
        'PGD steps giving the adversarial direction',
        argv,
    )
    # twice the eps: the distances of a robust model lie around it
    args.eps_max, args.eps_source = ra.analysis_radius(
        args.eps_max, '--eps-max', args.labelled_models, DEFAULT_EPS_MAX, 2
    )
    return args


def main():
    args = parse_args()
    from nofrost_mm.evaluation import robustness_analysis as ra

    print(f'boundary search radius: eps-max {args.eps_max:g}/255 ({args.eps_source})')

    def measure(label, net, images, targets):
        print(f'{label}: boundary distances of {len(images)} samples')
        dist = ra.boundary_distances(
            net, images, targets, args.eps_max, args.steps, batch_size=args.batch_size
        )
        margin = ra.logit_margins(net, images, targets, args.batch_size)
        return dict(distance=dist, margin=margin)

    results = ra.measure_models(args, measure)

    summary = {
        label: dict(
            boundary_distance=ra.summary(r['distance']), logit_margin=ra.summary(r['margin'])
        )
        for label, r in results.items()
    }
    for label, s in summary.items():
        d, m = s['boundary_distance'], s['logit_margin']
        print(
            f"{label}: boundary distance (L-inf, /255) median "
            f"{d.get('median', math.nan):.3f} mean {d.get('mean', math.nan):.3f}"
            f", beyond eps-max {100 * d['censored']:.1f}%; logit margin "
            f"median {m['median']:.3f} mean {m['mean']:.3f}, negative "
            f"{100 * float((results[label]['margin'] < 0).double().mean()):.1f}%"
        )
    ra.save_comparison(
        args,
        plot(results, args),
        dict(eps_max=args.eps_max, eps_source=args.eps_source, models=summary),
    )


def plot(results, args):
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    bins = torch.linspace(0, args.eps_max, 33).tolist()
    margins = torch.cat([r['margin'] for r in results.values()])
    margin_bins = torch.linspace(
        margins.min().item(), margins.max().item() + 1e-6, 41
    ).tolist()  # shared, so the bars compare
    for label, r in results.items():
        # censored samples (no crossing within eps-max) sit in the last bin
        d = r['distance'].clamp(max=args.eps_max)
        axes[0].hist(d.tolist(), bins=bins, alpha=0.5, label=label)
        axes[1].hist(r['margin'].tolist(), bins=margin_bins, alpha=0.5, label=label)
    axes[0].set(
        xlabel='distance to the boundary along the PGD direction (L-inf, /255)',
        ylabel='samples',
        title=f'decision margin (last bin: >= {args.eps_max:g})',
    )
    axes[1].axvline(0, color='k', lw=0.8)
    axes[1].set(
        xlabel='logit margin z_y - max_{j != y} z_j', ylabel='samples', title='logit margin (clean)'
    )
    for ax in axes:
        ax.legend()
    return fig


if __name__ == '__main__':
    main()
