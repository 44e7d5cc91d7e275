"""Build attacks from config without scope warnings."""
from typing import Callable, Union

from mmengine.registry import DefaultScope

from nofrost_mm.registry import ATTACKS


def build_attack(cfg: Union[dict, Callable]) -> Callable:
    """Build an attack from a config dict, or return an attack object as is.

    ATTACKS is a root registry with scope ``nofrost_mm``; configs run under
    ``default_scope='mmpretrain'``, for which mmengine would warn that it
    falls back to ATTACKS. Building inside the registry's own scope is the
    same lookup without the warning.

    Args:
        cfg (dict | Callable): ``dict(type='PGDAttack', eps=8, ...)`` or an
            already built attack.

    Returns:
        Callable: The attack.
    """
    if not isinstance(cfg, dict):
        if not callable(cfg):
            raise TypeError(f'an attack must be a config dict or callable, got {cfg!r}')
        return cfg
    with DefaultScope.overwrite_default_scope(ATTACKS.scope):
        return ATTACKS.build(cfg)
