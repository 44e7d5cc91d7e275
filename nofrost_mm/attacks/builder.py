"""Build attacks from config without scope warnings."""

import ast
import copy
import inspect
from typing import Callable, List, Optional, Sequence, Tuple, Union

from mmengine.registry import DefaultScope

from nofrost_mm.registry import ATTACKS
from .pgd import pgd_step_size

# the step-size argument of torchattacks' iterative attacks (PGD, BIM,
# MIFGSM, FFGSM, ...), in pixel units of 255 through the adapter; the
# plug-in's own attacks default their step to a rule of the eps already
STEP_KEY = 'alpha'
# the radius argument: torchattacks' PIFGSM names it max_epsilon
EPS_KEYS = ('eps', 'max_epsilon')


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
        eps (float, optional): Give the attack this eps (and the step that
            follows it) unless it names one: :func:`with_eps`. Defaults to
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
        raise ValueError(
            f"--attacks {spec!r}: needs a 'type' key (or 'attack', for an entry with 'restarts')"
        )
    return cfg if eps is None else with_eps(cfg, eps)


def _parameters(name: str) -> dict:
    """The ``__init__`` parameters of the attack type ``name`` (for a
    torchattacks adapter, of the torchattacks class); {} if unknown."""
    cls = ATTACKS.module_dict.get(name)
    if cls is None:
        return {}
    target = getattr(cls, 'attack_cls', None) or cls
    try:
        return dict(inspect.signature(target.__init__).parameters)
    except (TypeError, ValueError):
        return {}


def takes_eps(name: str) -> bool:
    """Whether the attack type ``name`` of the ATTACKS registry has an
    ``eps`` argument (PGD, FGSM, AutoAttack, PIFGSM's ``max_epsilon``, ...;
    not CW or DeepFool).

    For a torchattacks adapter, the torchattacks class's own signature
    decides. An unknown name is False (building it raises, naming the
    allowed types).
    """
    return _eps_key(name) is not None


def _eps_key(name: str) -> Optional[str]:
    params = _parameters(name)
    return next((k for k in EPS_KEYS if k in params), None)


def _default(params: dict, key: str):
    p = params.get(key)
    return None if p is None or p.default is inspect.Parameter.empty else p.default


def _norm(name: str, cfg: dict) -> str:
    from .torchattacks_adapter import L2_ATTACKS

    norm = cfg.get('norm', _default(_parameters(name), 'norm'))
    return norm or ('L2' if name in L2_ATTACKS else 'Linf')


def with_eps(attack: Union[str, dict], eps: float) -> Union[str, dict]:
    """An attack given the eps it names none of, and the step that follows.

    The one rule by which an attack follows the training eps (or the
    report's ``--eps``): a bare type name (``--attacks PGD``) names no eps
    and becomes ``dict(type=name, eps=eps)``; a config without ``eps``
    (also under ``attack``, an entry of ``RobustnessReportLoop``) gets it.
    A torchattacks attack with a step size (``alpha``: PGD, BIM, MIFGSM,
    FFGSM, ...) that names none then also gets the plug-in's step rule
    :func:`pgd_step_size` for that eps and its ``steps`` (its own default
    count, 1 for single-step FFGSM), as the plug-in's PGD does: torchattacks'
    own default of 2/255 would leave PGD-10 short of an eps of 76.5/255.
    An attack that names its eps keeps its step as written.

    A known attack without an eps (CW, DeepFool) is returned as is; an
    unknown name gets the eps too (building it raises, naming the allowed
    types).

    Args:
        attack (str | dict): A type name, an attack config, or an entry
            with the config under ``attack``; not changed in place.
        eps (float): The L-inf eps, pixel units of 255.

    Returns:
        str | dict: The name, or a copy of the config.

    Raises:
        ValueError: The attack is not L-inf (PGDL2, ``norm='L2'``): an
            L-inf eps is no radius for it.
    """
    if isinstance(attack, str):
        if attack in ATTACKS.module_dict and not takes_eps(attack):
            return attack
        attack = dict(type=attack)
    if not isinstance(attack, dict):
        return attack  # an attack object: built already
    attack = copy.deepcopy(attack)
    target = attack['attack'] if isinstance(attack.get('attack'), dict) else attack
    name = target.get('type')
    if any(k in target for k in EPS_KEYS) or name in ATTACKS.module_dict and not takes_eps(name):
        return attack
    if name in ATTACKS.module_dict and _norm(name, target) != 'Linf':
        raise ValueError(
            f'attack {name} ({_norm(name, target)}) names no eps: the training '
            f'eps {eps:g} is an L-inf radius; give its own eps (pixel units '
            f"of 255, e.g. {{'type': '{name}', 'eps': 127.5}} for a radius of 0.5)"
        )
    target[_eps_key(name) or 'eps'] = eps
    params = _parameters(name)
    if STEP_KEY in params and STEP_KEY not in target:
        steps = target.get('steps', _default(params, 'steps') if 'steps' in params else 1)
        # a bad step count is the attack's own error, when it is built
        if isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1:
            target[STEP_KEY] = pgd_step_size(eps, steps)
    return attack


def attack_settings(attack, restarts: int = 1) -> dict:
    """What a built attack runs with, as far as it has each setting.

    ``eps`` and ``step`` in pixel units of 255 (``step``: the step size of
    a fixed-step attack; absent where the attack sets its own, as APGD's
    adaptive step or Square's random squares), ``steps``, ``queries``
    (Square) and ``restarts`` (the attack's own restarts times ``restarts``).

    Args:
        attack: A built attack (the plug-in's or a torchattacks adapter).
        restarts (int): Runs of the attack around it (a
            ``RobustnessReportLoop`` entry's ``restarts``). Defaults to 1.

    Returns:
        dict: The settings.
    """
    get_step = getattr(attack, 'get_step_size', None)
    step = get_step() if callable(get_step) else getattr(attack, 'step_size', None)
    settings = dict(
        eps=getattr(attack, 'eps', None),
        step=step,
        steps=getattr(attack, 'steps', None),
        queries=getattr(attack, 'n_queries', None),
        restarts=(getattr(attack, 'n_restarts', None) or 1) * restarts,
    )
    return {k: v for k, v in settings.items() if v is not None}


def format_settings(name: str, settings: dict) -> str:
    """``'PGD: eps 76.5, step 8.05, 10 steps, 1 restart'``."""
    parts = [f'{k} {settings[k]:.4g}' for k in ('eps', 'step') if k in settings]
    parts += [f'{settings[k]} {k}' for k in ('steps', 'queries') if k in settings]
    n = settings.get('restarts', 1)
    parts.append(f"{n} restart{'s' if n > 1 else ''}")
    return f"{name}: {', '.join(parts)}"


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
        raise TypeError(
            'test_cfg.attacks must be a list of attack configs '
            f"(dict(type='PGD', eps=8, steps=20)), got {attacks!r}"
        )
    built, names = [], set()
    for cfg in attacks:
        cfg = dict(type=cfg) if isinstance(cfg, str) else dict(cfg)
        if cfg.get('type') not in ATTACKS.module_dict:
            raise KeyError(
                f'test_cfg.attacks: unknown attack type {cfg.get("type")!r}; '
                f'allowed: {sorted(ATTACKS.module_dict)}'
            )
        name = attack_name(cfg)
        if name in names or name in ('clean', 'worst_case'):
            raise ValueError(
                f'test_cfg.attacks: result name {name!r} is used '
                "twice or reserved; give the attack a `name`"
            )
        names.add(name)
        build_cfg = {k: v for k, v in cfg.items() if k != 'name'}
        built.append((name, build_attack(build_cfg), cfg))
    return built
