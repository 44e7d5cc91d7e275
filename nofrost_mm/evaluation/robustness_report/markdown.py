"""The Markdown page of the robustness report."""

from typing import List, Optional, Sequence

from .plan import ReportPlan, fmt_eps


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join(' --- ' for _ in header) + '|']
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines) + '\n'


def _pct(x: Optional[float]) -> str:
    return '-' if x is None else f'{x:.2f}'


def _num(x) -> str:
    return '-' if x is None else f'{x:.4g}'


def _attack_cfg(plan: ReportPlan, name: str) -> dict:
    return {k: v for k, v in plan.built[name][1].items() if k != 'name'}


def markdown(models: List[dict], plan: ReportPlan, settings: dict) -> str:
    """The Markdown report: summary, flags, tables, plots."""
    eps = fmt_eps(plan.eps)
    out = [
        '# Robustness report\n',
        f"L-inf eps {eps}/255 ({settings['eps_source']}); "
        f"{settings['num_samples_used']} test samples "
        f"(seed {settings['seed']}); flags tolerate "
        f"{models[0]['summary']['tolerance']:.2f} points. Robust accuracy "
        'in %; a misclassified clean sample counts as broken. The '
        '**worst case** counts a sample as robust only if it survives '
        'every attack at this eps: it is the robust accuracy to quote.\n',
    ]
    if plan.autoattack:
        out.append(
            'AutoAttack is the standard version of Croce & Hein (2020): '
            f'APGD-CE, APGD-T and FAB-T with {plan.apgd_steps} iterations, '
            f'then Square with {plan.autoattack_queries} queries, each on '
            'the survivors of the previous ones (`AutoAttack/X`: the stages '
            'up to X).\n'
        )
    if plan.pgd_step_size is None:
        out.append(
            'PGD uses the official NoFrost step size min(1.25 eps, eps + 4) / '
            'steps and a random start: every step count travels the same '
            'total distance, so a flat PGD curve does not mean that PGD has '
            'converged (APGD adapts its step size; `--pgd-step-size` fixes '
            'PGD\'s).\n'
        )
    else:
        out.append(
            f'PGD uses a fixed step size of {fmt_eps(plan.pgd_step_size)}/255 and a random start.\n'
        )
    pgd20 = plan.pgd(20) if 20 in plan.pgd_steps else plan.pgd(plan.pgd_steps[0])
    header = ['model', 'clean', pgd20, plan.apgd_ce]
    header += ['AutoAttack'] if plan.autoattack else []
    header += ['worst case', f'{pgd20} - worst case', 'flags']
    rows = []
    for m in models:
        s = m['summary']
        row = [
            m['name'],
            _pct(s['clean']),
            _pct(s['attacks'][pgd20]['accuracy']),
            _pct(s['attacks'][plan.apgd_ce]['accuracy']),
        ]
        if plan.autoattack:
            row.append(_pct(s['attacks']['AutoAttack']['accuracy']))
        row += [
            f"**{_pct(s['worst_case'])}**",
            _pct(s['attacks'][pgd20]['accuracy'] - s['worst_case']),
            ', '.join(sorted({f['id'] for f in s['flags']})) or 'none',
        ]
        rows.append(row)
    out += ['## Summary\n', _table(header, rows)]

    out.append('## Gradient-masking flags\n')
    for m in models:
        flags = m['summary']['flags']
        out.append(
            f"**{m['name']}**: " + ('no flag.\n' if not flags else f'{len(flags)} flag(s).\n')
        )
        if flags:
            out.append(
                '\n'.join(f"- `{f['id']}` {f['title']}: {f['message']}" for f in flags) + '\n'
            )
    out += [
        '## Accuracy vs attack strength\n',
        '![robust accuracy vs PGD steps](accuracy_vs_steps.png)\n',
    ]
    header = ['PGD steps'] + [
        f"{m['name']} ({k} restart{'s' if k > 1 else ''})"
        for m in models
        for k in sorted({1, plan.restarts})
    ]
    rows = [
        [s]
        + [
            _pct(m['summary']['pgd'][str(s)][str(k)])
            for m in models
            for k in sorted({1, plan.restarts})
        ]
        for s in plan.pgd_steps
    ]
    out.append(_table(header, rows))
    out += [
        '\n## Accuracy vs eps\n',
        f'{plan.apgd_ce} at each eps; a sample broken at a smaller eps '
        'counts as broken at the larger ones.\n',
        '![robust accuracy vs eps](accuracy_vs_eps.png)\n',
    ]
    header = ['eps (/255)'] + [m['name'] for m in models]
    rows = [['0 (clean)'] + [_pct(m['summary']['clean']) for m in models]]
    rows += [
        [fmt_eps(e)] + [_pct(m['summary']['eps_curve'][fmt_eps(e)]) for m in models]
        for e in plan.eps_list
    ]
    out.append(_table(header, rows))

    out.append(f'\n## Every attack at eps {eps}/255\n')
    out.append(
        'Precision: what the attack ran in (`--amp`: bf16 or fp16 '
        'autocast where the attack is as strong as in fp32, fp32 '
        'otherwise); every "misclassified?" decision is fp32.\n'
    )
    header = ['attack'] + [f"{m['name']} (%, s, precision)" for m in models]
    rows = [
        [n]
        + [
            f"{_pct(a['accuracy'])} ({a['seconds']:.1f} s, {a.get('precision') or '-'})"
            for m in models
            for a in [m['summary']['attacks'][n]]
        ]
        for n in plan.attack_names
    ]
    rows.append(['**worst case**'] + [f"**{_pct(m['summary']['worst_case'])}**" for m in models])
    out.append(_table(header, rows))

    out.append('\n## Attacks as run\n')
    out.append(
        'Sizes in pixel units of 255; no step: the attack sets its '
        "own (APGD's adaptive step, Square's random squares); "
        'restarts: runs of the attack, a sample counting as broken '
        'if any run breaks it.\n'
    )
    header = ['attack', 'eps', 'step', 'steps', 'queries', 'restarts', 'config']
    rows = [
        [n, *(_num(s.get(k)) for k in header[1:-1]), f"`{_attack_cfg(plan, n)}`"]
        for n, s in plan.settings.items()
    ]
    out.append(_table(header, rows))

    out.append('\n## Input gradients (logit margin, correct samples)\n')
    header = [
        'model',
        'correct samples',
        'zero gradient',
        'vanishing',
        'median eps x L1(grad) / margin',
    ]
    rows = [
        [
            m['name'],
            g['num_correct'],
            g['zero'],
            g['vanishing'],
            '-' if g['median_ratio'] is None else f"{g['median_ratio']:.3g}",
        ]
        for m in models
        for g in [m['summary']['gradients']]
    ]
    out.append(_table(header, rows))

    out.append('\n## Models\n')
    for m in models:
        out.append(f"- **{m['name']}**: `{m['config']}`, `{m['checkpoint']}`")
    out.append('\nAll numbers and the per-sample results are in `report.json`.\n')
    return '\n'.join(out)
