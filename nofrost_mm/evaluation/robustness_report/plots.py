"""The two plots of the robustness report: accuracy against steps and against eps."""

from typing import List

from .plan import ReportPlan, fmt_eps


def _colors(n: int):
    import matplotlib

    cmap = matplotlib.colormaps['tab10']
    return [cmap(i % 10) for i in range(n)]


def plot_steps(models: List[dict], plan: ReportPlan, path: str) -> None:
    """Robust accuracy against PGD steps, one colour per model."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(7.5, 5.2), dpi=120)
    colors = _colors(len(models))
    for i, (m, color) in enumerate(zip(models, colors)):
        pgd = m['summary']['pgd']
        steps = plan.pgd_steps
        lw = _width(i, len(models))
        ax.plot(steps, [pgd[str(s)]['1'] for s in steps], 'o-', color=color, lw=lw, ms=7)
        if plan.restarts > 1:
            # hollow markers: visible where the two lines coincide
            ax.plot(
                steps,
                [pgd[str(s)][str(plan.restarts)] for s in steps],
                's--',
                color=color,
                lw=lw * 0.6,
                ms=9,
                mfc='none',
            )
        ax.axhline(m['summary']['worst_case'], color=color, ls=':', lw=lw * 0.8)
        # APGD-CE at its own step count: where PGD stays above it, the
        # fixed-step PGD has not converged
        ax.plot(
            [plan.apgd_steps],
            [m['summary']['attacks'][plan.apgd_ce]['accuracy']],
            '*',
            color=color,
            ms=14,
            mec='k',
            mew=0.6,
        )
    # colour = model, line style = what is measured: two short legends
    styles = [Line2D([], [], color='k', marker='o', ls='-', label='PGD, 1 restart')]
    if plan.restarts > 1:
        styles.append(
            Line2D(
                [],
                [],
                color='k',
                marker='s',
                mfc='none',
                ls='--',
                label=f'PGD, {plan.restarts} restarts',
            )
        )
    styles.append(
        Line2D(
            [],
            [],
            color='w',
            marker='*',
            ms=12,
            mfc='grey',
            mec='k',
            ls='none',
            label=f'{plan.apgd_ce} (adaptive step)',
        )
    )
    styles.append(Line2D([], [], color='k', ls=':', label='worst case over all attacks'))
    legends = [
        ax.legend(
            handles=[
                Line2D([], [], color=c, lw=3, label=m['name']) for m, c in zip(models, colors)
            ],
            fontsize=8,
            loc='upper left',
            bbox_to_anchor=(0, -0.12),
            title='model',
            title_fontsize=8,
        )
    ]
    ax.add_artist(legends[0])
    legends.append(
        ax.legend(handles=styles, fontsize=8, loc='upper right', bbox_to_anchor=(1, -0.12))
    )
    ax.set_xscale('log')
    ticks = sorted(set(plan.pgd_steps) | {plan.apgd_steps})
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(s) for s in ticks])
    ax.minorticks_off()
    rule = (
        'step min(1.25 eps, eps + 4) / steps'
        if plan.pgd_step_size is None
        else f'step {fmt_eps(plan.pgd_step_size)}/255'
    )
    ax.set_xlabel(f'PGD steps ({rule})')
    ax.set_ylabel('robust accuracy (%)')
    ax.set_ylim(-2, 102)
    ax.set_title(f'Robust accuracy vs attack steps (L-inf eps {fmt_eps(plan.eps)}/255)')
    ax.grid(alpha=0.3)
    # the legends sit below the axes, never over the lines
    fig.savefig(path, bbox_inches='tight', bbox_extra_artists=legends)
    plt.close(fig)


def _width(i: int, n: int) -> float:
    """Line width of model ``i`` of ``n``: earlier models drawn wider, so
    that lines with the same values stay visible under later ones."""
    return 1.8 + 1.2 * (n - 1 - i)


def plot_eps(models: List[dict], plan: ReportPlan, path: str) -> None:
    """Robust accuracy against eps (clean at eps 0), one line per model."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    xs = [0.0] + list(plan.eps_list)
    for i, (m, color) in enumerate(zip(models, _colors(len(models)))):
        s = m['summary']
        ys = [s['clean']] + [s['eps_curve'][fmt_eps(e)] for e in plan.eps_list]
        ax.plot(xs, ys, 'o-', color=color, lw=_width(i, len(models)), label=m['name'])
    ax.axvline(plan.eps, color='grey', ls=':', lw=1, label=f'report eps {fmt_eps(plan.eps)}/255')
    ax.set_xticks(xs)
    ax.set_xticklabels([fmt_eps(x) for x in xs])
    ax.set_xlabel('L-inf eps (pixel units of 255)')
    ax.set_ylabel('robust accuracy (%)')
    ax.set_ylim(-2, 102)
    ax.set_title(f'Robust accuracy vs eps ({plan.apgd_ce}; eps 0 = clean)')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc='best')
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
