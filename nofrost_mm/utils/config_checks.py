"""Reject a bad value of a plug-in config key before any data is read.

Each check raises with the full config key (``env_cfg.dist_cfg.timeout``,
``custom_hooks.DivergenceGuardHook.action``), the value given and what is
allowed; an unknown key is reported with the closest valid name (difflib).
Components of the plug-in call these from their ``__init__``.

Example:
    >>> check_keys('env_cfg.dist_cfg', {'timout': 60}, ('backend', 'timeout'))
    Traceback (most recent call last):
    ...
    KeyError: "env_cfg.dist_cfg: unknown key 'timout' (did you mean \
'timeout'?); valid keys: backend, timeout"
"""
import difflib
import inspect
import numbers
from typing import Any, Iterable, Mapping, Optional, Sequence


def closest_name(name: str, valid: Iterable[str]) -> Optional[str]:
    """The valid name closest to ``name``, or None if none is close."""
    match = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.6)
    return match[0] if match else None


def check_keys(owner: str, given: Mapping, valid: Iterable[str]) -> None:
    """Raise KeyError on a key of ``given`` that is not in ``valid``.

    Args:
        owner (str): Config path of the dict, used in the message.
        given (Mapping): The dict from the config.
        valid (Iterable[str]): The keys allowed there.
    """
    valid = sorted(valid)
    for key in given:
        if key not in valid:
            guess = closest_name(key, valid)
            hint = f' (did you mean {guess!r}?)' if guess else ''
            raise KeyError(f'{owner}: unknown key {key!r}{hint}; valid keys: '
                           f'{", ".join(valid)}')


def check_choice(key: str, value: Any, choices: Iterable) -> None:
    """Raise ValueError unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        guess = closest_name(value, [str(c) for c in choices]) \
            if isinstance(value, str) else None
        hint = f' (did you mean {guess!r}?)' if guess else ''
        raise ValueError(f'{key}={value!r} is not allowed{hint}; allowed: '
                         f'{", ".join(map(repr, choices))}')


def check_bool(key: str, value: Any) -> None:
    """Raise TypeError unless ``value`` is a bool."""
    if not isinstance(value, bool):
        raise TypeError(f'{key} must be True or False, got {value!r}')


def check_number(key: str, value: Any, *, integer: bool = False,
                 min_value: Optional[float] = None,
                 max_value: Optional[float] = None,
                 min_inclusive: bool = True) -> None:
    """Raise TypeError/ValueError unless ``value`` is a number in range.

    Args:
        key (str): Config key, used in the message.
        value (Any): The value from the config.
        integer (bool): Require an int. Defaults to False (any real number).
        min_value (float, optional): Lower bound. Defaults to None.
        max_value (float, optional): Upper bound (inclusive). Defaults to None.
        min_inclusive (bool): Whether ``min_value`` itself is allowed.
            Defaults to True.
    """
    kind = numbers.Integral if integer else numbers.Real
    # bool is an int to python, never a sensible count or duration
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f'{key} must be {"an int" if integer else "a number"}'
                        f', got {value!r} ({type(value).__name__})')
    if value != value:  # NaN
        raise ValueError(f'{key} must be a number, got nan')
    low_ok = min_value is None or (value >= min_value if min_inclusive
                                   else value > min_value)
    high_ok = max_value is None or value <= max_value
    if not (low_ok and high_ok):
        low = '' if min_value is None else \
            f'{"[" if min_inclusive else "("}{min_value}'
        high = '' if max_value is None else f'{max_value}]'
        bounds = f'{low or "(-inf"}, {high or "inf)"}'
        raise ValueError(f'{key}={value!r} is out of range; allowed: {bounds}')


def accepted_kwargs(cls) -> Optional[set]:
    """Keyword names ``cls(...)`` accepts, following ``**kwargs`` up the MRO.

    Returns None when a ``**kwargs`` leads to no class that names them
    (e.g. ``nn.Module``): then nothing can be said about unknown keys.
    """
    names = set()
    for klass in cls.__mro__:
        if '__init__' not in vars(klass):
            continue
        if klass is object or not klass.__module__.startswith(
                ('nofrost_mm', 'mmpretrain', 'mmengine', 'mmcv')):
            return None
        params = inspect.signature(vars(klass)['__init__']).parameters
        names |= {n for n, p in params.items() if n != 'self' and p.kind in (
            p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            return names
    return None


def check_plugin_component_keys(cfg: Any, registries: Sequence,
                                path: str = '') -> None:
    """Report an unknown argument of any plug-in component in a config.

    Walks ``cfg``; every dict whose ``type`` names a ``nofrost_mm`` class in
    one of ``registries`` must use only arguments that class accepts, else
    KeyError with the closest valid name; a key the class lists in its
    ``MOVED_KEYS`` (old name -> new config key) is a ValueError naming the
    new key. Other types are left to their
    owners (mmengine reports them when building).

    Args:
        cfg (Any): A config, or any part of one.
        registries (Sequence): mmengine registries to resolve ``type`` in.
        path (str): Config path of ``cfg``, for messages. Defaults to ''.
    """
    if isinstance(cfg, (list, tuple)):
        for i, item in enumerate(cfg):
            check_plugin_component_keys(item, registries, f'{path}[{i}]')
        return
    if not isinstance(cfg, Mapping):
        return
    type_name = cfg.get('type')
    if isinstance(type_name, str):
        for registry in registries:
            cls = registry.get(type_name)
            if inspect.isclass(cls) and cls.__module__.startswith('nofrost_mm'):
                # keys of earlier versions name their new home
                for key, new in getattr(cls, 'MOVED_KEYS', {}).items():
                    if key in cfg:
                        raise ValueError(f'{path or "config"}.{key} moved to {new}')
                valid = accepted_kwargs(cls)
                if valid is not None:
                    # an attack's `name` labels its result (RobustTestLoop)
                    reserved = ('type', '_scope_') + (
                        ('name', ) if registry.name == 'attack' else ())
                    check_keys(f'{path or "config"} (type={type_name!r})',
                               {k: v for k, v in cfg.items()
                                if k not in reserved}, valid)
                break
    for key, value in cfg.items():
        check_plugin_component_keys(value, registries,
                                    f'{path}.{key}' if path else str(key))
