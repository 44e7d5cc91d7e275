"""Build attacks from config without scope warnings."""
import ast
import inspect
from typing import Callable, List, Optional, Sequence, Tuple, Union

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


def parse_attack(spec: str, eps: Optional[float] = None) -> Union[str, dict]:
    """One ``--attacks`` item of the tools: a type name or a dict literal.

    Args:
        spec (str): ``PGD`` or ``"{'type': 'PGDAttack', 'steps': 20}"``; a
            dict may hold its attack under ``attack`` instead (an entry of
            ``RobustnessReportLoop``, with ``restarts``).
        eps (float, optional): Give the attack this eps unless it names one
            (a name of an attack with an eps then becomes
            ``dict(type=name, eps=eps)``, :func:`with_eps`). Defaults to
            None (names stay names, dicts as written).

    Returns:
        str | dict: The attack name or config.
    """
    if not spec.lstrip().startswith('{'):
        return spec if eps is None else with_eps(spec, eps)
    try:
        cfg = ast.literal_eval(spec)
    except (ValueError, SyntaxError) as e:
        raise ValueError(f'--attacks {spec!r}: not a dict literal ({e})')
    if not isinstance(cfg, dict) or not ('type' in cfg or 'attack' in cfg):
        raise ValueError(f"--attacks {spec!r}: needs a 'type' key (or 'attack', "
                         "for an entry with 'restarts')")
    if eps is not None:
        target = cfg['attack'] if isinstance(cfg.get('attack'), dict) else cfg
        target.setdefault('eps', eps)
    return cfg


def takes_eps(name: str) -> bool:
    """Whether the attack type ``name`` of the ATTACKS registry has an
    ``eps`` argument (PGD, FGSM, AutoAttack, ...; not CW or DeepFool).

    For a torchattacks adapter, the torchattacks class's own signature
    decides. An unknown name is False (building it raises, naming the
    allowed types).
    """
    cls = ATTACKS.module_dict.get(name)
    if cls is None:
        return False
    target = getattr(cls, 'attack_cls', None) or cls
    try:
        return 'eps' in inspect.signature(target.__init__).parameters
    except (TypeError, ValueError):
        return False


def with_eps(name: str, eps: float) -> Union[str, dict]:
    """``dict(type=name, eps=eps)`` for a bare attack type (a name names no
    eps, so it takes the one given), the name as is for a known attack
    without an eps (CW, DeepFool). An unknown name gets the eps too: building
    it raises, naming the allowed types."""
    if name in ATTACKS.module_dict and not takes_eps(name):
        return name
    return dict(type=name, eps=eps)


def takes_sample_keys(attack: Callable) -> bool:
    """Whether ``attack(model, images, labels, keys=...)`` is accepted.

    The plug-in's attacks take per-sample random keys; a user's own attack
    callable may not, and is then called without them.
    """
    try:
        return 'keys' in inspect.signature(attack).parameters
    except (TypeError, ValueError):
        return False


def attack_name(cfg: dict) -> str:
    """Result name of an attack config: ``name``, else type plus steps."""
    if 'name' in cfg:
        return str(cfg['name'])
    steps = cfg.get('steps')
    return cfg['type'] if steps is None else f"{cfg['type']}-{steps}"


def build_attacks(attacks: Sequence[Union[str, dict]]) -> List[Tuple[str, object, dict]]:
    """Check and build attack configs; raises before any model work.

    Args:
        attacks (Sequence[str | dict]): Attack configs of the ATTACKS registry
            (``dict(type='PGD', eps=8, steps=20)``; an optional ``name`` key
            names the result), or bare type names for the defaults.

    Returns:
        list[tuple]: ``(name, attack, cfg)`` for each attack.
    """
    if isinstance(attacks, (str, dict)) or not isinstance(attacks, Sequence):
        raise TypeError('test_cfg.attacks must be a list of attack configs '
                        f"(dict(type='PGD', eps=8, steps=20)), got {attacks!r}")
    built, names = [], set()
    for cfg in attacks:
        cfg = dict(type=cfg) if isinstance(cfg, str) else dict(cfg)
        if cfg.get('type') not in ATTACKS.module_dict:
            raise KeyError(
                f'test_cfg.attacks: unknown attack type {cfg.get("type")!r}; '
                f'allowed: {sorted(ATTACKS.module_dict)}')
        name = attack_name(cfg)
        if name in names or name in ('clean', 'worst_case'):
            raise ValueError(f'test_cfg.attacks: result name {name!r} is used '
                             "twice or reserved; give the attack a `name`")
        names.add(name)
        build_cfg = {k: v for k, v in cfg.items() if k != 'name'}
        built.append((name, build_attack(build_cfg), cfg))
    return built
