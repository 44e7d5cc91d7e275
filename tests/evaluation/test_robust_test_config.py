"""test_attacks (a config's, or tools/test.py --attacks) as the robust test
loop they stand for."""
import pytest
from mmengine.config import Config

from nofrost_mm.evaluation.robust_test_config import robust_test_cfg

EPS = 76.5


def _cfg(**extra):
    return Config(dict(data_preprocessor=dict(type='PGDDataPreprocessor', eps=EPS),
                       test_evaluator=dict(type='Accuracy'), **extra))


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


@pytest.mark.parametrize('entry', [
    dict(attack=dict(type='PGDAttack', steps=20), name='PGD-20', restarts=2),
    dict(type='PGDAttack', steps=20, restarts=3),
    dict(type='FGSM', after='clean'),
])
def test_restarts_and_after_need_the_report_loop_and_get_it(entry):
    # a stock mmpretrain config (plain test_cfg) with such an entry
    cfg = _cfg(test_cfg=dict(), test_attacks=[entry])
    robust_test_cfg(cfg)
    assert cfg.test_cfg.type == 'RobustnessReportLoop'
    attack = cfg.test_cfg.attacks[0]
    assert attack.get('attack', attack)['eps'] == EPS


def test_a_configs_own_report_loop_is_kept():
    cfg = _cfg(test_cfg=dict(type='RobustnessReportLoop', progress=False),
               test_attacks=['PGD'])
    robust_test_cfg(cfg)
    assert (cfg.test_cfg.type, cfg.test_cfg.progress) == ('RobustnessReportLoop', False)


def test_restarts_under_an_explicit_robust_test_loop_name_the_key():
    cfg = _cfg(test_cfg=dict(type='RobustTestLoop'),
               test_attacks=[dict(type='PGDAttack', restarts=2)])
    with pytest.raises(ValueError, match="test_cfg.type='RobustnessReportLoop'"):
        robust_test_cfg(cfg)


def test_a_config_without_attacks_is_left_alone():
    cfg = _cfg(test_cfg=dict())
    robust_test_cfg(cfg)
    assert cfg.test_cfg == dict() and cfg.test_evaluator == dict(type='Accuracy')
