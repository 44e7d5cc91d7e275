"""Attack entries of the robustness report: restarts and chained attacks."""

from typing import Sequence, Union

from nofrost_mm.attacks import attack_name

# keys of an attack entry that only RobustnessReportLoop understands
REPORT_KEYS = ('attack', 'restarts', 'after')


def restart_name(name: str, restarts: int) -> str:
    """Result name of the per-sample worst case over ``restarts`` runs."""
    return f'{name}x{restarts}'


def wrap_report_entry(entry: Union[dict, str]) -> Union[dict, str]:
    """An entry with ``restarts`` / ``after`` in the form with ``attack``.

    ``dict(type='PGDAttack', eps=8, restarts=2)`` (what a user writes after
    ``--attacks``) becomes ``dict(attack=dict(type='PGDAttack', eps=8),
    restarts=2)``: the attack's own arguments stay apart from the report's
    keys, so the runner's key check (which knows only the attack's
    arguments) accepts it. Other entries are returned as they are.

    Args:
        entry (dict | str): An attack entry; not changed in place.

    Returns:
        dict | str: The entry, wrapped where it needs to be.
    """
    if (
        not isinstance(entry, dict)
        or 'attack' in entry
        or not any(key in entry for key in REPORT_KEYS)
    ):
        return entry
    attack = {k: v for k, v in entry.items() if k not in REPORT_KEYS and k != 'name'}
    outer = {k: v for k, v in entry.items() if k in REPORT_KEYS or k == 'name'}
    return dict(attack=attack, **outer)


def split_report_keys(attacks: Sequence[Union[dict, str]]):
    """Take ``restarts`` and ``after`` out of attack entries, checked.

    An entry is an attack config (``dict(type='PGD', eps=8, name=...)``, or
    a type name) with the optional keys ``restarts`` and ``after``, or the
    same with the attack config apart:
    ``dict(attack=dict(type='PGD', eps=8), name=..., restarts=..., after=...)``
    (the form to use in a config of ``NoFrostRunner``, whose key check
    knows only the attack's own arguments).

    Args:
        attacks (Sequence[dict | str]): Attack entries.

    Returns:
        tuple: the attack configs with their optional ``name`` (for
        :func:`build_attacks`), the restarts per attack and the ``after``
        name (or None) per attack.
    """
    if isinstance(attacks, (str, dict)) or not isinstance(attacks, Sequence):
        raise TypeError(f'test_cfg.attacks must be a list of attack configs, got {attacks!r}')
    cfgs, restarts, after, names = [], [], [], {'clean'}
    for entry in attacks:
        entry = dict(type=entry) if isinstance(entry, str) else dict(entry)
        n = entry.pop('restarts', 1)
        prev = entry.pop('after', None)
        if 'attack' in entry:
            cfg = dict(entry.pop('attack'))
            if 'name' in entry:
                cfg['name'] = entry.pop('name')
            if entry:
                raise ValueError(
                    f'attack entry {entry}: unknown key(s) '
                    f'{sorted(entry)} beside attack, name, '
                    'restarts, after'
                )
        else:
            cfg = entry
        name = attack_name(cfg) if cfg.get('type') else repr(cfg)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f'attack {name}: restarts must be an int >= 1, got {n!r}')
        if prev is not None and prev not in names:
            raise ValueError(
                f'attack {name}: after={prev!r} is not the name '
                f'of an earlier result ({sorted(names)})'
            )
        names.add(name)
        if n > 1:
            if restart_name(name, n) in names:
                raise ValueError(
                    f'attack {name}: result name {restart_name(name, n)!r} is used twice'
                )
            names.add(restart_name(name, n))
        cfgs.append(cfg)
        restarts.append(n)
        after.append(prev)
    return cfgs, restarts, after
