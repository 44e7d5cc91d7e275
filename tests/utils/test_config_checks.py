import pytest

from nofrost_mm.utils import check_bool, check_choice, check_keys, check_number


def test_unknown_key_names_the_closest():
    with pytest.raises(KeyError, match="unknown key 'timout' \\(did you mean 'timeout'\\?\\)"):
        check_keys('env_cfg.dist_cfg', {'timout': 1}, ['backend', 'timeout'])
    with pytest.raises(KeyError, match="unknown key 'zzz'; valid keys: a, b"):
        check_keys('x', {'zzz': 1}, ['b', 'a'])


def test_choice_number_bool():
    with pytest.raises(ValueError, match="x='skp' is not allowed \\(did you mean 'skip'\\?\\)"):
        check_choice('x', 'skp', ('stop', 'skip'))
    check_number('n', 3, integer=True, min_value=1)
    for value, error in [(True, TypeError), (2.5, TypeError), (0, ValueError)]:
        with pytest.raises(error, match='^n'):
            check_number('n', value, integer=True, min_value=1)
    with pytest.raises(ValueError, match=r'\(0, 5\]'):
        check_number('t', 0.0, min_value=0, max_value=5, min_inclusive=False)
    with pytest.raises(ValueError, match='nan'):
        check_number('t', float('nan'))
    with pytest.raises(TypeError, match='b must be True or False'):
        check_bool('b', 1)
