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
import logging
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
            raise KeyError(f'{owner}: unknown key {key!r}{hint}; valid keys: {", ".join(valid)}')


def check_choice(key: str, value: Any, choices: Iterable) -> None:
    """Raise ValueError unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        guess = closest_name(value, [str(c) for c in choices]) if isinstance(value, str) else None
        hint = f' (did you mean {guess!r}?)' if guess else ''
        raise ValueError(
            f'{key}={value!r} is not allowed{hint}; allowed: {", ".join(map(repr, choices))}'
        )


def check_bool(key: str, value: Any) -> None:
    """Raise TypeError unless ``value`` is a bool."""
    if not isinstance(value, bool):
        raise TypeError(f'{key} must be True or False, got {value!r}')


def check_number(
    key: str,
    value: Any,
    *,
    integer: bool = False,
    min_value: Optional[float] = None,
    max_value: Optional[float] = None,
    min_inclusive: bool = True,
) -> None:
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
        raise TypeError(
            f'{key} must be {"an int" if integer else "a number"}'
            f', got {value!r} ({type(value).__name__})'
        )
    if value != value:  # NaN
        raise ValueError(f'{key} must be a number, got nan')
    low_ok = min_value is None or (value >= min_value if min_inclusive else value > min_value)
    high_ok = max_value is None or value <= max_value
    if not (low_ok and high_ok):
        low = '' if min_value is None else f'{"[" if min_inclusive else "("}{min_value}'
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
            ('nofrost_mm', 'mmpretrain', 'mmengine', 'mmcv')
        ):
            return None
        params = inspect.signature(vars(klass)['__init__']).parameters
        names |= {
            n
            for n, p in params.items()
            if n != 'self' and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            return names
    return None


def check_plugin_component_keys(cfg: Any, registries: Sequence, path: str = '') -> None:
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
                        ('name',) if registry.name == 'attack' else ()
                    )
                    check_keys(
                        f'{path or "config"} (type={type_name!r})',
                        {k: v for k, v in cfg.items() if k not in reserved},
                        valid,
                    )
                break
    for key, value in cfg.items():
        check_plugin_component_keys(value, registries, f'{path}.{key}' if path else str(key))


# mmengine's "no end" of a parameter scheduler (mmengine.optim.scheduler)
_MMENGINE_INF = int(1e9)


def _schedule_windows(param_scheduler: Any, key: str = 'param_scheduler') -> list:
    """(config key, type, begin, end, by_epoch) of each scheduler config.

    ``end`` is where the scheduler's curve is complete: its ``end``, or for
    an open-ended one its ``begin`` plus ``T_max`` (cosine), ``total_steps``
    (one-cycle), the sum of ``periods`` (cosine restarts) or the last of its
    ``milestones``; None when nothing bounds it (step or exponential decay).
    """
    if isinstance(param_scheduler, Mapping) and 'type' not in param_scheduler:
        # one scheduler list per optimizer
        return [
            w
            for name, sub in param_scheduler.items()
            for w in _schedule_windows(sub, f'{key}.{name}')
        ]
    if isinstance(param_scheduler, Mapping):
        entries = [(key, param_scheduler)]
    elif isinstance(param_scheduler, (list, tuple)):
        entries = [(f'{key}[{i}]', s) for i, s in enumerate(param_scheduler)]
    else:
        return []
    windows = []
    for name, cfg in entries:
        if not isinstance(cfg, Mapping):
            continue  # an already built scheduler
        begin, end = cfg.get('begin', 0), cfg.get('end', _MMENGINE_INF)
        if end >= _MMENGINE_INF:
            length = (
                cfg.get('T_max')
                or cfg.get('total_steps')
                or sum(cfg.get('periods') or [])
                or max(cfg.get('milestones') or [0])
            )
            end = begin + length if length else None
        windows.append((name, cfg.get('type'), begin, end, cfg.get('by_epoch', True)))
    return windows


def check_schedule_length(param_scheduler: Any, train_cfg: Optional[Mapping]) -> Optional[str]:
    """Warn when training stops before its parameter schedule ends.

    A run shortened with ``--cfg-options train_cfg.max_epochs=1`` keeps the
    schedule written for the full run: a warm-up, a cyclic or one-cycle lr
    never reaches its peak, a decay never reaches its end, and nothing says
    so. Compares each scheduler's window (``begin``-``end``, or the end its
    ``T_max``, ``total_steps``, ``periods`` or ``milestones`` imply) with
    ``train_cfg.max_epochs`` (epoch-based schedulers) or
    ``train_cfg.max_iters`` (iteration-based ones), and logs one warning
    naming every scheduler cut short, the epochs (or iterations) and what
    to change. Schedulers in the other unit than the training loop's are
    not judged (the iterations of an epoch are unknown here).

    Args:
        param_scheduler (Any): The config's ``param_scheduler``: a dict, a
            list of dicts or a dict of such lists (one per optimizer).
        train_cfg (Mapping, optional): The config's ``train_cfg``.

    Returns:
        str | None: The warning logged, or None if the schedule fits.
    """
    from mmengine.logging import print_log

    train_cfg = train_cfg or {}
    if 'max_epochs' in train_cfg:
        key, by_epoch, unit = 'max_epochs', True, 'epoch'
    elif 'max_iters' in train_cfg:
        key, by_epoch, unit = 'max_iters', False, 'iteration'
    else:
        return None
    length = train_cfg[key]
    cut = [
        (name, kind, begin, end)
        for name, kind, begin, end, sched_by_epoch in _schedule_windows(param_scheduler)
        if sched_by_epoch == by_epoch and end is not None and end > length
    ]
    if not cut:
        return None
    described = []
    for name, kind, begin, end in cut:
        window = f'{name} ({kind}, {unit}s {begin}-{end})'
        described.append(
            f'{window} never starts' if begin >= length else f'{window} stops at {unit} {length}'
        )
    full = max(end for *_, end in cut)
    units = f'{length} {unit}' + ('s' if length != 1 else '')
    message = (
        f'train_cfg.{key}={length} ends training before its parameter '
        f'schedule: {"; ".join(described)}. What the schedule sets after '
        f'{unit} {length} (the peak lr of a warm-up, cyclic or one-cycle '
        'schedule, the end of a decay) is never reached. To train this '
        "short, scale the schedulers' begin/end (and T_max, milestones, "
        f'total_steps) to {units}; to follow the schedule, set '
        f'train_cfg.{key}={full}.'
    )
    print_log(message, logger='current', level=logging.WARNING)
    return message
