"""Robustness report logic: the attack plan, eps defaults, flags, records."""

import pytest
from mmengine.config import Config

import nofrost_mm  # noqa: F401
from nofrost_mm.evaluation.metrics import RobustnessRecords
from nofrost_mm.evaluation.robustness_report import (
    ReportPlan,
    check_eps_list,
    config_eps,
    default_eps_list,
    markdown,
    summarize,
)
from nofrost_mm.evaluation.robustness_report.attack_entries import split_report_keys
from tests.conftest import REPO_ROOT

DEMO = REPO_ROOT / 'configs/demo'


def test_eps_comes_from_the_training_attack():
    assert config_eps(Config.fromfile(DEMO / 'resnet18-w16_1xb64_digits_pgdat.py')) == 32
    assert config_eps(Config.fromfile(DEMO / 'nf-resnet18-w16_1xb64_digits_pgdat.py')) == 32
    assert config_eps(Config.fromfile(DEMO / 'resnet18-w16_1xb64_digits.py')) is None
    assert config_eps(dict(test_attacks=[dict(type='FGSM', eps=4)])) == 4
    assert default_eps_list(32) == [8, 16, 32, 64, 128]
    assert default_eps_list(128) == [32, 64, 128, 255]  # capped, deduplicated


@pytest.mark.parametrize(
    'values, match',
    [
        ([8], 'at least 2'),
        ([8, 0], r'0 is not in \(0, 255\]'),
        ([8, 256], 'not in'),
        ([8, 8], 'repeated'),
        ([8, float('nan')], 'not in'),
    ],
)
def test_bad_eps_lists(values, match):
    with pytest.raises(ValueError, match=match):
        check_eps_list(values)


def small_plan(**kwargs):
    kw = dict(
        eps=8,
        eps_list=[4, 8, 16],
        pgd_steps=[10, 5],
        restarts=3,
        apgd_steps=10,
        square_queries=50,
        autoattack=True,
    )
    kw.update(kwargs)
    return ReportPlan(**kw)


def test_plan_names_and_worst_case_scope():
    plan = small_plan(
        extra_attacks=[dict(type='FGSM', eps=8), dict(type='FGSM', eps=16, name='big')]
    )
    assert plan.pgd_steps == [5, 10]
    assert plan.attack_names == [
        'PGD-5',
        'PGD-5x3',
        'PGD-10',
        'PGD-10x3',
        'APGD-CE-10',
        'APGD-DLR-10',
        'Square-50',
        'AutoAttack/APGD-T',
        'AutoAttack/FAB-T',
        'AutoAttack',
        'FGSM',
        'big',
    ]
    # the attack at eps 16 and the curve above eps 8 are not in the worst case
    assert 'big' not in plan.worst_case_over
    assert plan.worst_case_over[-2:] == ['APGD-CE-10@4', 'APGD-CE-10@8']
    assert plan.black_box == ['Square-50']
    assert 'AutoAttack' not in plan.white_box and 'FGSM' in plan.white_box
    # the eps curve is chained: each eps attacks the survivors of the last
    curve = [e for e in plan.cfgs if e['name'].startswith('APGD-CE-10@')]
    assert [e['after'] for e in curve] == [None, 'APGD-CE-10@4', 'APGD-CE-10@8']
    assert curve[1]['attack'] == dict(type='APGDAttack', eps=8, steps=10, loss='ce', n_restarts=1)


def test_plan_checks_attacks_when_built():
    with pytest.raises(KeyError, match='unknown attack type'):
        small_plan(extra_attacks=[dict(type='Nope', eps=8)])
    with pytest.raises(ValueError, match='restarts must be an int'):
        small_plan(restarts=0)
    with pytest.raises(ValueError, match='PGD steps'):
        small_plan(pgd_steps=[5, 5])


def test_pgd_step_size_rule():
    """The official rule travels eps + 4 in total whatever the steps; a fixed step does not."""
    official = small_plan(eps=32)
    fixed = small_plan(eps=32, pgd_step_size=2)
    for steps in (5, 10):
        attack, _ = official.built[f'PGD-{steps}']
        assert attack.get_step_size() * steps == pytest.approx(36)  # min(40, 36)
        attack, cfg = fixed.built[f'PGD-{steps}']
        assert attack.get_step_size() == 2 and cfg['step_size'] == 2
    assert official.to_dict()['pgd_step_size'] is None
    with pytest.raises(ValueError, match='pgd_step_size must be None'):
        small_plan(pgd_step_size=0)


def test_the_plan_states_what_each_attack_runs_with():
    # an extra bare name at the report's eps: torchattacks' PGD steps by the
    # plug-in's rule, not its own 2/255
    from nofrost_mm.attacks import parse_attack

    plan = small_plan(eps=32, extra_attacks=[parse_attack('PGD', 32)])
    settings = plan.settings
    assert settings['PGD-5'] == dict(eps=32, step=pytest.approx(36 / 5), steps=5, restarts=3)
    assert settings['PGD'] == dict(eps=32, step=pytest.approx(3.6), steps=10, restarts=1)
    assert settings['APGD-CE-10'] == dict(eps=32, steps=10, restarts=1)  # adaptive
    assert settings['Square-50'] == dict(eps=32, queries=50, restarts=1)
    assert settings['APGD-CE-10@16'] == dict(eps=16, steps=10, restarts=1)
    assert plan.to_dict()['settings'] == settings
    summary = summarize(_records(plan, {}), plan, tolerance=5)
    page = markdown(
        [dict(name='m', config='c.py', checkpoint='c.pth', summary=summary)],
        plan,
        dict(eps_source='--eps', num_samples_used=10, seed=0),
    )
    table = page.split('## Attacks as run')[1]
    assert "| PGD | 32 | 3.6 | 10 | - | 1 | `{'type': 'PGD', 'eps': 32, 'alpha': 3.6}` |" in table
    assert '| PGD-5 | 32 | 7.2 | 5 | - | 3 |' in table


def test_split_report_keys():
    cfgs, restarts, after = split_report_keys(
        [
            dict(type='PGD', eps=8, steps=3, restarts=2),
            dict(attack=dict(type='FGSM', eps=8), name='f', after='PGD-3'),
        ]
    )
    assert cfgs == [dict(type='PGD', eps=8, steps=3), dict(type='FGSM', eps=8, name='f')]
    assert restarts == [2, 1] and after == [None, 'PGD-3']
    with pytest.raises(ValueError, match='not the name of an earlier'):
        split_report_keys([dict(type='FGSM', after='PGD-3')])
    with pytest.raises(ValueError, match='unknown key'):
        split_report_keys([dict(attack=dict(type='FGSM'), restart=2)])


def _records(plan, survive, n=10, grad=1.0, margin=2.0):
    """n correctly classified samples; ``survive[name]`` of them survive."""
    names = plan.attack_names + [plan.eps_name(e) for e in plan.eps_list]
    return [
        dict(
            sample_idx=i,
            correct=dict(clean=True, **{k: i < survive.get(k, 0) for k in names}),
            seconds={k: 0.1 for k in names},
            margin=margin,
            grad_l1=grad,
        )
        for i in range(n)
    ]


def test_an_honest_model_is_not_flagged():
    plan = small_plan()
    survive = {k: 4 for k in plan.attack_names}
    survive.update({'APGD-CE-10@4': 6, 'APGD-CE-10@8': 4, 'Square-50': 5})
    summary = summarize(_records(plan, survive), plan, tolerance=5)
    assert summary['flags'] == []
    assert summary['worst_case'] == 40.0
    assert summary['eps_curve'] == {'4': 60.0, '8': 40.0, '16': 0.0}
    assert summary['pgd'] == {'5': {'1': 40.0, '3': 40.0}, '10': {'1': 40.0, '3': 40.0}}


def test_each_flag_names_its_numbers():
    plan = small_plan()
    survive = {k: 8 for k in plan.attack_names}
    # AutoAttack (a chain after APGD-CE) above PGD-10: the ordering flag
    survive.update(
        {
            'PGD-5': 9,
            'PGD-10': 8,
            'PGD-10x3': 6,
            'Square-50': 2,
            'APGD-CE-10': 9,
            'AutoAttack/APGD-T': 9,
            'AutoAttack/FAB-T': 9,
            'AutoAttack': 9,
            'APGD-CE-10@4': 9,
            'APGD-CE-10@8': 8,
            'APGD-CE-10@16': 7,
        }
    )
    records = _records(plan, survive, grad=0.0)
    records[0]['grad_l1'] = 1e-6  # vanishing: 8/255 * 1e-6 / 2 << 1e-3
    summary = summarize(records, plan, tolerance=5)
    flags = {(f['id'], f['title']): f for f in summary['flags']}
    ids = {f['id'] for f in summary['flags']}
    assert ids == {'steps', 'black_box', 'gradients', 'large_eps', 'ordering'}
    steps = flags['steps', 'robust accuracy still falling with more steps']
    assert steps['numbers'] == dict(
        weaker='PGD-5', weaker_acc=90.0, stronger='PGD-10', stronger_acc=80.0
    )
    assert 'PGD-10 leaves 80.00%' in steps['message']
    restarts = flags['steps', 'robust accuracy still falling with more restarts']
    assert restarts['numbers']['stronger'] == 'PGD-10x3'
    assert (
        'steps',
        'robust accuracy still falling with a stronger optimiser',
    ) not in flags  # APGD-CE-10 90% is not below PGD-10
    survive['APGD-CE-10'] = 2
    optimiser = [
        f
        for f in summarize(_records(plan, survive), plan, 5)['flags']
        if f['title'].endswith('a stronger optimiser')
    ]
    assert optimiser[0]['numbers'] == dict(
        weaker='PGD-10', weaker_acc=80.0, stronger='APGD-CE-10', stronger_acc=20.0
    )
    bb = next(f for f in summary['flags'] if f['id'] == 'black_box')
    assert bb['numbers']['black_box_acc'] == 20.0
    assert bb['numbers']['white_box_acc'] == 60.0  # PGD-10x3, the best
    assert bb['numbers']['only_black_box'] == 4  # samples 2..5
    grads = next(f for f in summary['flags'] if f['id'] == 'gradients')
    assert grads['numbers']['zero'] == 9 and grads['numbers']['vanishing'] == 1
    big = next(f for f in summary['flags'] if f['id'] == 'large_eps')
    assert big['numbers'] == dict(eps=16.0, accuracy=70.0)
    order = [f['message'] for f in summary['flags'] if f['id'] == 'ordering']
    assert any('AutoAttack (90.00%)' in m and 'PGD-10 (80.00%)' in m for m in order)


def test_records_metric_keeps_samples_and_worst_case_scope():
    metric = RobustnessRecords(worst_case_over=['A'])
    samples = [
        dict(
            sample_idx=i,
            robust_correct=dict(clean=True, A=a, B=b),
            attack_seconds=dict(A=1.0, B=1.0),
            margin=1.0,
            grad_l1=2.0,
        )
        for i, (a, b) in enumerate([(True, False), (True, True)])
    ]
    metric.process(None, samples)
    metric.process(None, samples[:1])  # a padding repeat of sample 0
    out = metric.compute_metrics(metric.results)
    assert out['worst_case'] == 100.0  # B is not in the worst case
    assert out['B'] == 50.0
    assert [r['sample_idx'] for r in metric.records] == [0, 1]
    assert metric.records[0]['grad_l1'] == 2.0
