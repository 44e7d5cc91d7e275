"""Gradient-masking flags of the robustness report, each naming its numbers."""

from types import SimpleNamespace
from typing import List

from ..gradient_masking import gradient_masking_warnings
from .plan import VANISHING_RATIO, ReportPlan, fmt_eps


def _flag(flag_id: str, title: str, message: str, **numbers) -> dict:
    return dict(id=flag_id, title=title, message=message, numbers=numbers)


def masking_flags(summary: dict, records: List[dict], plan: ReportPlan, tol: float) -> List[dict]:
    """Gradient-masking flags of one model, each naming its numbers.

    Args:
        summary (dict): The accuracies of :func:`summarize`.
        records (list[dict]): Per-sample records.
        plan (ReportPlan): The attacks.
        tol (float): Accuracy points tolerated before a flag.

    Returns:
        list[dict]: Flags with ``id``, ``title``, ``message``, ``numbers``.
    """
    flags = []
    attacks = summary['attacks']
    pgd = summary['pgd']
    eps = fmt_eps(plan.eps)

    # 1. still falling with more steps / restarts
    if len(plan.pgd_steps) >= 2:
        s1, s2 = plan.pgd_steps[-2:]
        a1, a2 = pgd[str(s1)]['1'], pgd[str(s2)]['1']
        if a1 - a2 > tol:
            flags.append(
                _flag(
                    'steps',
                    'robust accuracy still falling with more steps',
                    f'PGD-{s2} leaves {a2:.2f}% robust, {a1 - a2:.2f} points '
                    f'below PGD-{s1} ({a1:.2f}%) at eps {eps}/255: the attack has '
                    'not converged; trust only the strongest attacks',
                    weaker=f'PGD-{s1}',
                    weaker_acc=a1,
                    stronger=f'PGD-{s2}',
                    stronger_acc=a2,
                )
            )
    if plan.restarts > 1:
        s = plan.pgd_steps[-1]
        a1, ak = pgd[str(s)]['1'], pgd[str(s)][str(plan.restarts)]
        if a1 - ak > tol:
            flags.append(
                _flag(
                    'steps',
                    'robust accuracy still falling with more restarts',
                    f'{plan.restarts} restarts of PGD-{s} leave {ak:.2f}%, '
                    f'{a1 - ak:.2f} points below one restart ({a1:.2f}%) at eps '
                    f'{eps}/255: the loss surface is rugged or the attack '
                    'under-converged',
                    weaker=plan.pgd(s),
                    weaker_acc=a1,
                    stronger=plan.pgd(s, plan.restarts),
                    stronger_acc=ak,
                )
            )

    s = plan.pgd_steps[-1]
    a_pgd, a_apgd = pgd[str(s)]['1'], attacks[plan.apgd_ce]['accuracy']
    if a_pgd - a_apgd > tol:
        flags.append(
            _flag(
                'steps',
                'robust accuracy still falling with a stronger optimiser',
                f'{plan.apgd_ce} leaves {a_apgd:.2f}%, {a_pgd - a_apgd:.2f} '
                f'points below PGD-{s} ({a_pgd:.2f}%) at eps {eps}/255: '
                'fixed-step PGD has not found the adversarial examples, so PGD '
                'numbers overstate the robustness (the NoFrost controversy)',
                weaker=plan.pgd(s),
                weaker_acc=a_pgd,
                stronger=plan.apgd_ce,
                stronger_acc=a_apgd,
            )
        )

    # 2. a black-box attack beats every white-box attack
    white = [n for n in plan.white_box if n in attacks]
    if white:
        best = min(white, key=lambda n: attacks[n]['accuracy'])
        best_acc = attacks[best]['accuracy']
        for bb in plan.black_box:
            bb_acc = attacks[bb]['accuracy']
            only_bb = sum(
                1 for r in records if not r['correct'][bb] and all(r['correct'][w] for w in white)
            )
            if best_acc - bb_acc > tol:
                flags.append(
                    _flag(
                        'black_box',
                        'a black-box attack beats the white-box ones',
                        f'{bb} (no gradients) leaves {bb_acc:.2f}%, '
                        f'{best_acc - bb_acc:.2f} points below the best white-box '
                        'attack '
                        f'{best} ({best_acc:.2f}%) at eps {eps}/255; {only_bb} '
                        'samples survive every white-box attack but not '
                        f'{bb}: the gradients mislead the attacks',
                        black_box=bb,
                        black_box_acc=bb_acc,
                        white_box=best,
                        white_box_acc=best_acc,
                        only_black_box=only_bb,
                    )
                )

    # 3. zero or vanishing input gradients
    grads = summary['gradients']
    bad = grads['zero'] + grads['vanishing']
    if bad:
        flags.append(
            _flag(
                'gradients',
                'zero or vanishing input gradients',
                f"{grads['zero']} of {grads['num_correct']} correctly classified "
                f"samples have a zero (or non-finite) input gradient of the logit "
                f"margin and {grads['vanishing']} a vanishing one (first-order "
                f'margin change over the eps {eps}/255 ball below '
                f'{VANISHING_RATIO:g} of the margin): gradient-based attacks '
                'cannot move them',
                **grads,
            )
        )

    # 4. accuracy not reaching 0 at the largest eps
    big = plan.eps_list[-1]
    big_acc = summary['eps_curve'][fmt_eps(big)]
    if big_acc > tol:
        flags.append(
            _flag(
                'large_eps',
                'accuracy not reaching 0 at large eps',
                f'{plan.eps_name(big)} leaves {big_acc:.2f}% robust at eps '
                f'{fmt_eps(big)}/255, the largest eps tried: a large enough '
                'perturbation changes any label, so the attack is failing '
                '(if this eps is small for the data, add larger ones to '
                '--eps-list)',
                eps=big,
                accuracy=big_acc,
            )
        )

    # 5. a stronger attack above a weaker one (RobustTestLoop's guard), over
    # the standalone results at the report's eps, and AutoAttack as a whole
    standalone = [
        (n, a, c)
        for n, (a, c) in plan.built.items()
        if n in attacks and n not in plan.chained and plan.at_report_eps(n)
    ]
    if plan.autoattack:
        standalone.append(
            (
                'AutoAttack',
                SimpleNamespace(eps=plan.eps, norm='Linf', steps=None),
                dict(type='AutoAttack'),
            )
        )
    accs = {n: attacks[n]['accuracy'] for n, _, _ in standalone}
    for msg in gradient_masking_warnings(standalone, accs, None, tol):
        flags.append(_flag('ordering', 'a stronger attack above a weaker one', msg))
    return flags
