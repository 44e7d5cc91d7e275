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


def _schedule(name):
    from mmengine.config import Config

    from tests.conftest import REPO_ROOT

    return Config.fromfile(str(REPO_ROOT / f'configs/_base_/schedules/{name}.py'))


def test_shortened_cyclic_schedule_is_named_with_its_epochs():
    from nofrost_mm.utils.config_checks import check_schedule_length

    cfg = _schedule('mnist_adam_cyclic_10e')  # lr 0 -> peak at epoch 4 -> 0 at 10
    assert check_schedule_length(cfg.param_scheduler, cfg.train_cfg) is None
    message = check_schedule_length(cfg.param_scheduler, dict(cfg.train_cfg, max_epochs=1))
    assert message.startswith(
        'train_cfg.max_epochs=1 ends training before its parameter '
        'schedule: param_scheduler[0] (LinearLR, epochs 0-4) stops at '
        'epoch 1; param_scheduler[1] (LinearLR, epochs 4-10) never starts.'
    )
    assert 'peak lr' in message and 'set train_cfg.max_epochs=10' in message
    assert 'to 1 epoch;' in message
    # cut inside the decay: only the second scheduler is named
    message = check_schedule_length(cfg.param_scheduler, dict(cfg.train_cfg, max_epochs=6))
    assert 'param_scheduler[1] (LinearLR, epochs 4-10) stops at epoch 6' in message
    assert 'param_scheduler[0]' not in message


@pytest.mark.parametrize(
    'scheduler,train_cfg,named',
    [
        # an open end: the cosine's T_max, the milestones, one-cycle's total_steps
        (
            dict(type='CosineAnnealingLR', by_epoch=True, T_max=15),
            dict(max_epochs=5),
            'param_scheduler (CosineAnnealingLR, epochs 0-15) stops at epoch 5',
        ),
        (
            [
                dict(type='LinearLR', begin=0, end=5),
                dict(type='MultiStepLR', begin=5, milestones=[30, 60]),
            ],
            dict(by_epoch=True, max_epochs=50),
            'param_scheduler[1] (MultiStepLR, epochs 5-65) stops at epoch 50',
        ),
        (
            dict(type='OneCycleLR', eta_max=0.1, total_steps=1000, by_epoch=False),
            dict(type='IterBasedTrainLoop', max_iters=100),
            'param_scheduler (OneCycleLR, iterations 0-1000) stops at iteration 100',
        ),
        # one scheduler list per optimizer
        (
            dict(generator=[dict(type='CosineAnnealingLR', T_max=10)]),
            dict(max_epochs=2),
            'param_scheduler.generator[0] (CosineAnnealingLR, epochs 0-10) stops at epoch 2',
        ),
    ],
)
def test_schedule_windows_of_each_form(scheduler, train_cfg, named):
    from nofrost_mm.utils.config_checks import check_schedule_length

    assert named in check_schedule_length(scheduler, train_cfg)


@pytest.mark.parametrize(
    'scheduler,train_cfg',
    [
        (dict(type='CosineAnnealingLR', by_epoch=True, T_max=15), dict(max_epochs=15)),
        (dict(type='StepLR', step_size=2), dict(max_epochs=1)),  # no end to reach
        # iterations in an epoch-based run: not judged (the epoch's length is unknown)
        (dict(type='LinearLR', by_epoch=False, begin=0, end=5000), dict(max_epochs=1)),
        ([], dict(max_epochs=1)),
        (None, dict(max_epochs=1)),
    ],
)
def test_schedules_that_fit_or_cannot_be_judged_say_nothing(scheduler, train_cfg):
    from nofrost_mm.utils.config_checks import check_schedule_length

    assert check_schedule_length(scheduler, train_cfg) is None


def test_every_schedule_base_fits_its_own_training_length():
    from nofrost_mm.utils.config_checks import check_schedule_length
    from tests.conftest import REPO_ROOT

    names = sorted(p.stem for p in (REPO_ROOT / 'configs/_base_/schedules').glob('*.py'))
    assert 'mnist_adam_cyclic_10e' in names
    for name in names:
        cfg = _schedule(name)
        assert check_schedule_length(cfg.param_scheduler, cfg.train_cfg) is None, name
