"""The one door through which the plug-in reads checkpoints.

Every checkpoint the plug-in loads (``NoFrostRunner``'s resume, ``load_from``
and ``tools/test.py``; the catastrophic-overfitting guard's rollback; the
analysis tools' :func:`load_into_model`) is read by :func:`read_checkpoint`:

- a local file is integrity-checked first: torch writes checkpoints as zip
  archives with a CRC-32 per member, and torch's own reader does not check
  them (a file with flipped bytes in a tensor loads, with wrong weights).
  Every member's CRC is checked (:func:`checkpoint_problem`), so a damaged
  file raises :class:`CheckpointLoadError` naming the file and the member;
- ``torch.load`` stays weights-only
  (:mod:`nofrost_mm.utils.checkpoint_safe_globals` allow-lists what mmengine
  writes), and every way it fails is a :class:`CheckpointLoadError` that
  names the file and says what is wrong.

The same check picks the checkpoint a run resumes from
(:func:`latest_complete_checkpoint`): ``last_checkpoint`` only when the file
it names is whole, else the newest whole ``epoch_*``/``iter_*`` file.

Remote checkpoints (URLs, ``backend_args``) are read by mmengine's loaders
without the CRC check.
"""

import glob
import os.path as osp
import pickle
import re
import zipfile
from typing import Callable, Optional

import torch

CHECKPOINT_NAME = re.compile(r'(epoch|iter)_\d+\.pth')

# the first bytes of torch's pre-1.6 (non-zip) format: its magic number pickled
_LEGACY_MAGIC = pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=2)


class CheckpointLoadError(RuntimeError):
    """A checkpoint that cannot be read, resumed or loaded into the model."""


def _is_remote(filename) -> bool:
    return '://' in str(filename)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ''


def checkpoint_problem(filename: str) -> Optional[str]:
    """What is wrong with a local checkpoint file's bytes, or None if whole.

    Reads the zip directory and every member with its CRC-32, without
    unpickling anything. torch's legacy (pre-1.6, non-zip) format carries no
    checksums: such a file passes here and is checked by unpickling it.

    Args:
        filename (str): Path of the file.

    Returns:
        str | None: A description of the damage, or None.
    """
    if not osp.isfile(filename):
        return 'no such file'
    try:
        with zipfile.ZipFile(filename) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile as error:
        with open(filename, 'rb') as f:
            if f.read(len(_LEGACY_MAGIC)) == _LEGACY_MAGIC:
                return None
        if osp.getsize(filename) == 0:
            return 'empty file'
        return (
            'truncated or corrupted: no valid zip directory '
            f'({error}); the writer was killed, a copy or download is '
            'incomplete, or it is not a checkpoint'
        )
    except (OSError, EOFError, ValueError, NotImplementedError) as error:
        return (
            f'truncated or corrupted: its zip archive cannot be read '
            f'({type(error).__name__}: {error})'
        )
    if bad is not None:
        return (
            f'corrupted: member {bad!r} fails its CRC check (its bytes '
            'changed after torch wrote them: disk or copy damage)'
        )
    return None


def is_complete_checkpoint(filename: str) -> bool:
    """Whether a local file is a whole checkpoint (:func:`checkpoint_problem`)."""
    return checkpoint_problem(filename) is None


def read_checkpoint(filename: str, map_location='cpu', mmap: bool = False) -> dict:
    """Read a checkpoint (integrity-checked, weights-only) into a dict.

    Args:
        filename (str): Local path, or a URL / remote path that mmengine's
            loaders read (without the CRC check).
        map_location: As for ``torch.load``. Defaults to 'cpu'.
        mmap (bool): Map the tensors' storage from the file instead of
            reading it (local files only; for a look at ``meta``).
            Defaults to False.

    Returns:
        dict: The checkpoint (an mmengine checkpoint or a state dict).

    Raises:
        CheckpointLoadError: Naming the file and what is wrong: missing,
            truncated, damaged (the member whose CRC fails), objects outside
            the weights-only allow-list, not a dict.
    """
    if not _is_remote(filename):
        filename = osp.expanduser(str(filename))
        problem = checkpoint_problem(filename)
        if problem is not None:
            raise CheckpointLoadError(f'checkpoint {filename}: {problem}')
    try:
        if _is_remote(filename):
            from mmengine.runner.checkpoint import _load_checkpoint

            checkpoint = _load_checkpoint(filename, map_location=map_location)
        else:
            checkpoint = torch.load(
                filename,
                map_location=map_location,
                weights_only=True,
                mmap=mmap and zipfile.is_zipfile(filename),
            )
    except pickle.UnpicklingError as error:
        if 'weights only' in str(error).lower():
            raise CheckpointLoadError(
                f'checkpoint {filename} holds Python objects outside the '
                'weights-only allow-list (nofrost_mm keeps weights-only '
                'loading on; only mmengine checkpoints and plain state '
                f'dicts load): {_first_line(error)}'
            ) from error
        raise CheckpointLoadError(
            f'checkpoint {filename} is corrupted (not a torch checkpoint): {_first_line(error)}'
        ) from error
    except Exception as error:
        # torch's unpickler fails in many ways on damaged bytes (IndexError,
        # KeyError, RuntimeError, EOFError ...): all mean the same to a user
        raise CheckpointLoadError(
            f'checkpoint {filename} is truncated or corrupted (was its '
            'writer killed, or the copy incomplete?): '
            f'{type(error).__name__}: {_first_line(error)}'
        ) from error
    if not isinstance(checkpoint, dict):
        raise CheckpointLoadError(
            f'checkpoint {filename} holds a {type(checkpoint).__name__}, '
            'not a dict (an mmengine checkpoint or a state dict)'
        )
    return checkpoint


def latest_complete_checkpoint(
    work_dir: str, warn: Optional[Callable[[str], None]] = None
) -> Optional[str]:
    """The checkpoint a run in ``work_dir`` continues from, or None.

    ``last_checkpoint`` (written by mmengine's ``CheckpointHook`` after the
    checkpoint itself) when the file it names is whole; else the newest
    whole ``epoch_*.pth`` / ``iter_*.pth``. mmengine's
    ``find_latest_checkpoint`` trusts the pointer.

    Args:
        work_dir (str): The run's work dir.
        warn (callable, optional): Receives a message for each file passed
            over. Defaults to None (mmengine's current logger).

    Returns:
        str | None: Path of the checkpoint.
    """
    if warn is None:
        from mmengine.logging import print_log

        def warn(message):
            print_log(message, logger='current', level=30)

    pointer = osp.join(work_dir, 'last_checkpoint')
    named = None
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip() or None
        problem = checkpoint_problem(named) if named else 'it is empty'
        if problem is None:
            return named
        warn(
            f'{pointer} names {named!r}, which cannot be used ({problem}): '
            'looking for the newest complete checkpoint instead.'
        )
    candidates = [
        p
        for p in glob.glob(osp.join(work_dir, '*.pth'))
        if CHECKPOINT_NAME.fullmatch(osp.basename(p))
    ]
    for path in sorted(candidates, key=osp.getmtime, reverse=True):
        problem = checkpoint_problem(path)
        if problem is None:
            if osp.isfile(pointer):
                warn(f'Using {path} instead.')
            return path
        warn(f'Skipping checkpoint {path}: {problem}.')
    return None


def check_fits_model(
    filename: str,
    checkpoint: dict,
    model: torch.nn.Module,
    resuming: bool = False,
    revise_keys: list = [(r'^module.', '')],
) -> None:
    """Refuse a checkpoint whose tensors do not fit ``model``.

    Resuming needs every tensor; loading weights (fine-tuning may swap a
    head) needs at least half of the model's tensors: a file that fits less
    is another architecture.

    Args:
        filename (str): The file (named in the error).
        checkpoint (dict): What :func:`read_checkpoint` returned.
        model (nn.Module): The (unwrapped) model.
        resuming (bool): Whether the run resumes from it. Defaults to False.
        revise_keys (list): ``(pattern, replacement)`` applied to the keys,
            as mmengine's ``load_checkpoint``. Defaults to stripping
            ``module.``.

    Raises:
        CheckpointLoadError: Counting the missing, wrong-shape and
            unexpected tensors, with an example of each.
    """
    is_mmengine = 'state_dict' in checkpoint and 'meta' in checkpoint
    state_dict = checkpoint.get('state_dict', checkpoint)
    for pattern, repl in revise_keys:
        state_dict = {re.sub(pattern, repl, k): v for k, v in state_dict.items()}
    timm_like = any(k.startswith(('stem.', 'stages.')) for k in state_dict)
    hint = (
        (
            ' Its keys (stem.*, stages.*) are those of a timm '
            'model state dict: mmpretrain models name them backbone.*, '
            'neck.*, head.*; convert a timm NF-ResNet with tools/'
            'model_converters/timm_nfresnet_to_mmpretrain.py and load it '
            'into an NF-ResNet config.'
        )
        if timm_like
        else ''
    )
    if resuming and not is_mmengine:
        raise CheckpointLoadError(
            f'checkpoint {filename} cannot be resumed: it is a bare state '
            'dict (no meta, optimizer or scheduler states), not a '
            'checkpoint written by tools/train.py.'
            + hint
            + ' Use load_from to start from its weights.'
        )
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}'
        for k, v in expected.items()
        if k in state_dict
        and hasattr(state_dict[k], 'shape')
        and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    fitting = len(expected) - len(missing) - len(mismatched)
    if (resuming and (missing or unexpected or mismatched)) or fitting < len(expected) / 2:
        details = [
            f'{len(missing)} of {len(expected)} model tensors '
            'missing' + (f' (e.g. {missing[0]})' if missing else ''),
            f'{len(mismatched)} of other shape'
            + (f' (e.g. {mismatched[0]})' if mismatched else ''),
            f'{len(unexpected)} unexpected' + (f' (e.g. {unexpected[0]})' if unexpected else ''),
        ]
        raise CheckpointLoadError(
            f'checkpoint {filename} does not fit the model '
            f'({type(model).__name__}): it was saved from another '
            f'architecture or config: {"; ".join(details)}.' + hint
        )


def load_into_model(
    model: torch.nn.Module,
    filename: str,
    map_location='cpu',
    strict: bool = False,
    revise_keys: list = [(r'^module\.', '')],
) -> dict:
    """Read a checkpoint (:func:`read_checkpoint`) and load its weights.

    The checked counterpart of mmengine's ``load_checkpoint`` for code
    outside a runner (analysis tools).

    Args:
        model (nn.Module): The model (unwrapped).
        filename (str): The checkpoint.
        map_location: As for ``torch.load``. Defaults to 'cpu'.
        strict (bool): Whether every key must match exactly. Defaults to
            False (but a file that fits less than half of the model is
            refused, :func:`check_fits_model`).
        revise_keys (list): As mmengine's ``load_checkpoint``.

    Returns:
        dict: The checkpoint.
    """
    from mmengine.runner.checkpoint import _load_checkpoint_to_model

    checkpoint = read_checkpoint(filename, map_location)
    check_fits_model(filename, checkpoint, model, False, revise_keys)
    return _load_checkpoint_to_model(
        model, checkpoint, strict, logger='silent', revise_keys=revise_keys
    )
