"""test_attacks (a config's, or tools/test.py --attacks) as the robust test
loop they stand for."""

import pytest
from mmengine.config import Config

from nofrost_mm.evaluation.robust_test_config import robust_test_cfg

EPS = 76.5


def _cfg(**extra):
    return Config(
        dict(
            data_preprocessor=dict(type='PGDDataPreprocessor', eps=EPS),
            test_evaluator=dict(type='Accuracy'),
            **extra,
        )
    )


def test_plain_attacks_become_a_robust_test_loop_at_the_training_eps():
    cfg = _cfg(test_attacks=[dict(type='PGDAttack', steps=20), 'FGSM'])
    robust_test_cfg(cfg, num_samples=100)
    assert cfg.test_cfg.type == 'RobustTestLoop'
    assert cfg.test_cfg.num_samples == 100
    pgd, fgsm = cfg.test_cfg.attacks
    assert pgd['eps'] == EPS
    # a bare name names no eps: it follows too (`--attacks FGSM` on an MNIST config
    # attacks at 0.3, not at the attack's default of 8/255)
    assert fgsm == dict(type='FGSM', eps=EPS)


def test_names_without_an_eps_stay_names():
    cfg = _cfg(test_attacks=['CW', 'DeepFool', 'AutoAttack', 'NoSuchAttack'])
    robust_test_cfg(cfg)
    assert cfg.test_cfg.attacks[:3] == ['CW', 'DeepFool', dict(type='AutoAttack', eps=EPS)]
    assert cfg.test_evaluator == dict(type='RobustAccuracy')
    assert 'test_attacks' not in cfg


@pytest.mark.parametrize(
    'entry',
    [
        dict(attack=dict(type='PGDAttack', steps=20), name='PGD-20', restarts=2),
        dict(type='PGDAttack', steps=20, restarts=3),
        dict(type='FGSM', after='clean'),
    ],
)
def test_restarts_and_after_need_the_report_loop_and_get_it(entry):
    # a stock mmpretrain config (plain test_cfg) with such an entry
    cfg = _cfg(test_cfg=dict(), test_attacks=[entry])
    robust_test_cfg(cfg)
    assert cfg.test_cfg.type == 'RobustnessReportLoop'
    attack = cfg.test_cfg.attacks[0]
    assert attack.get('attack', attack)['eps'] == EPS


def test_a_configs_own_report_loop_is_kept():
    cfg = _cfg(test_cfg=dict(type='RobustnessReportLoop', progress=False), test_attacks=['PGD'])
    robust_test_cfg(cfg)
    assert (cfg.test_cfg.type, cfg.test_cfg.progress) == ('RobustnessReportLoop', False)


def test_restarts_under_an_explicit_robust_test_loop_name_the_key():
    cfg = _cfg(
        test_cfg=dict(type='RobustTestLoop'), test_attacks=[dict(type='PGDAttack', restarts=2)]
    )
    with pytest.raises(ValueError, match="test_cfg.type='RobustnessReportLoop'"):
        robust_test_cfg(cfg)


def test_a_config_without_attacks_is_left_alone():
    cfg = _cfg(test_cfg=dict())
    robust_test_cfg(cfg)
    assert cfg.test_cfg == dict() and cfg.test_evaluator == dict(type='Accuracy')


def test_torchattacks_steps_follow_the_training_eps_as_the_plugins_pgd():
    # `tools/test.py --attacks AutoAttack PGD` on an eps-0.3 MNIST config: PGD
    # at 76.5/255 with torchattacks' 2/255 step reached 55% where AutoAttack
    # reached 25%
    cfg = _cfg(
        test_attacks=[
            'AutoAttack',
            'PGD',
            dict(type='MIFGSM', steps=20),
            dict(type='PGD', eps=8),
            dict(type='CW', steps=5),
        ]
    )
    robust_test_cfg(cfg)
    aa, pgd, mifgsm, own, cw = cfg.test_cfg.attacks
    assert aa == dict(type='AutoAttack', eps=EPS)
    assert pgd == dict(type='PGD', eps=EPS, alpha=pytest.approx(80.5 / 10))
    assert mifgsm == dict(type='MIFGSM', steps=20, eps=EPS, alpha=pytest.approx(80.5 / 20))
    assert own == dict(type='PGD', eps=8)  # its own eps, its own step
    # CW takes no eps: a dict of it gets none (building it would fail)
    assert cw == dict(type='CW', steps=5)


def test_an_l2_test_attack_without_an_eps_names_the_attack():
    cfg = _cfg(test_attacks=['PGDL2'])
    with pytest.raises(ValueError, match='PGDL2 .*L-inf radius'):
        robust_test_cfg(cfg)


def test_the_reports_metric_is_kept():
    # RobustnessRecords is a RobustAccuracy keeping the per-sample records:
    # replacing it lost them (the report's AttributeError 'records')
    cfg = _cfg(test_cfg=dict(type='RobustnessReportLoop'), test_attacks=['PGD'])
    cfg.test_evaluator = dict(type='RobustnessRecords')
    robust_test_cfg(cfg)
    assert cfg.test_evaluator == dict(type='RobustnessRecords')


@pytest.mark.parametrize(
    'entry',
    [
        dict(type='PGDAttack', steps=2, restarts=2),
        dict(type='PGDAttack', steps=2, name='PGD-2', after='clean'),
    ],
)
def test_report_entries_pass_the_runners_key_check(entry):
    # `--attacks "{'type': 'PGDAttack', 'restarts': 2}"`: the runner checks the
    # attack's own arguments, so restarts / after must not sit beside them
    from nofrost_mm.engine.runner.nofrost_runner import _plugin_registries
    from nofrost_mm.utils.config_checks import check_plugin_component_keys

    cfg = _cfg(test_cfg=dict(), test_attacks=[entry])
    robust_test_cfg(cfg)
    wrapped = cfg.test_cfg.attacks[0]
    assert wrapped['attack']['type'] == 'PGDAttack'
    assert 'restarts' not in wrapped['attack'] and 'after' not in wrapped['attack']
    check_plugin_component_keys(dict(test_cfg=cfg.test_cfg), _plugin_registries())
    # unwrapped, the same entry is refused by the key check
    with pytest.raises(KeyError, match="unknown key 'restarts'|unknown key 'after'"):
        check_plugin_component_keys(
            dict(test_cfg=dict(type='RobustnessReportLoop', attacks=[entry])), _plugin_registries()
        )


def test_a_configs_own_robust_loop_attacks_follow_the_training_eps():
    # test_cfg written in the config (no test_attacks): its attacks without an
    # eps ran at the attack's default 8/255 on an eps-0.3 config
    cfg = _cfg(
        test_cfg=dict(
            type='RobustnessReportLoop',
            attacks=[
                dict(type='PGDAttack', steps=5, restarts=2),
                'FGSM',
                dict(type='PGDAttack', eps=4, steps=5),
            ],
        )
    )
    robust_test_cfg(cfg)
    pgd, fgsm, own = cfg.test_cfg.attacks
    assert pgd['attack']['eps'] == EPS and pgd['restarts'] == 2
    assert fgsm == dict(type='FGSM', eps=EPS)
    assert own['eps'] == 4


def test_runner_from_cfg_applies_the_rules_to_a_configs_own_robust_loop(monkeypatch):
    from mmengine.runner import Runner

    from nofrost_mm.engine.runner import NoFrostRunner

    seen = {}
    monkeypatch.setattr(
        Runner, 'from_cfg', classmethod(lambda cls, cfg: seen.setdefault('cfg', cfg))
    )
    cfg = _cfg(test_cfg=dict(type='RobustTestLoop', attacks=['FGSM']))
    NoFrostRunner.from_cfg(cfg)
    assert seen['cfg'].test_cfg.attacks == [dict(type='FGSM', eps=EPS)]
    assert cfg.test_cfg.attacks == ['FGSM']  # the caller's config is not changed
