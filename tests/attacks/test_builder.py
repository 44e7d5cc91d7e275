"""Attack names and --attacks items given the eps they name none of."""
import nofrost_mm  # noqa: F401  (registers the attacks)
from nofrost_mm.attacks import parse_attack, takes_eps, with_eps


def test_takes_eps_reads_the_attacks_own_signature():
    assert takes_eps('PGDAttack') and takes_eps('AutoAttack')
    assert takes_eps('FGSM') and takes_eps('PGD')  # torchattacks adapters
    assert not takes_eps('CW') and not takes_eps('DeepFool')
    assert not takes_eps('NoSuchAttack')


def test_a_name_gets_the_eps_only_where_its_attack_has_one():
    assert with_eps('FGSM', 76.5) == dict(type='FGSM', eps=76.5)
    assert with_eps('CW', 76.5) == 'CW'
    # an unknown name keeps the dict form: building it names the allowed types
    assert with_eps('NoSuchAttack', 8) == dict(type='NoSuchAttack', eps=8)
    # the tools' --attacks items follow the same rule
    assert parse_attack('AutoAttack', 8) == dict(type='AutoAttack', eps=8)
    assert parse_attack('DeepFool', 8) == 'DeepFool'
    assert parse_attack('FGSM') == 'FGSM'
    assert parse_attack("{'type': 'PGD', 'eps': 4}", 8) == dict(type='PGD', eps=4)
