"""Per-chunk results of a robust evaluation on disk, so a killed run resumes.

An evaluation of many attacks on many samples (AutoAttack on ImageNet takes
days) is cut by :class:`RobustTestLoop` into fixed chunks. After each chunk
every process writes that chunk's per-sample results to its own file,
atomically; ``tools/test.py --resume`` loads the finished chunks and attacks
only the others. The folder's ``manifest.json`` holds the fingerprint of the
evaluation (config, checkpoint, attacks, subset, world size): resuming with
anything different is an error that names what differs, since mixing chunks
of two evaluations would give numbers of neither.
"""

import glob
import hashlib
import json
import logging
import os
import os.path as osp
import time
from typing import Any, Dict, List, Optional

import torch
from mmengine.dist import barrier, get_dist_info
from mmengine.logging import print_log

from nofrost_mm.utils.checkpoint_reader import checkpoint_problem

STATE_DIR = 'robust_eval_state'
MANIFEST = 'manifest.json'
COMPLETE = 'COMPLETE'


def file_sha256(path: str) -> str:
    """SHA-256 of a file's bytes (read in 16 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 24), b''):
            digest.update(block)
    return digest.hexdigest()


def canonical(obj: Any) -> Any:
    """A JSON-safe, key-sorted copy of a config fragment (for comparing)."""
    return json.loads(json.dumps(obj, sort_keys=True, default=repr))


def atomic_save(obj: Any, path: str) -> None:
    """``torch.save`` to a temporary name, fsync, then rename into place."""
    partial = osp.join(osp.dirname(path), f'.{osp.basename(path)}.partial')
    torch.save(obj, partial)
    with open(partial, 'rb') as f:
        os.fsync(f.fileno())
    os.replace(partial, path)


def _write_json(obj: Any, path: str) -> None:
    partial = osp.join(osp.dirname(path), f'.{osp.basename(path)}.partial')
    with open(partial, 'w') as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)


def find_resumable_state(work_dir: str, fingerprint: Dict[str, Any]) -> Optional[str]:
    """The state under ``work_dir``'s run folders that ``--resume`` continues.

    The newest state with this fingerprint (finished or not: a finished one
    is read back whole); else the newest unfinished one, else the newest
    finished one: :class:`EvaluationState` then reports how it differs
    (``--resume`` never starts a new full run while states exist). None when
    there is no state at all (nothing to resume).
    """
    fingerprint = canonical(fingerprint)
    found = sorted(
        (
            d
            for d in glob.glob(osp.join(work_dir, '*', STATE_DIR))
            if osp.isfile(osp.join(d, MANIFEST))
        ),
        key=osp.getmtime,
        reverse=True,
    )
    unfinished = None
    for d in found:
        with open(osp.join(d, MANIFEST)) as f:
            if json.load(f)['fingerprint'] == fingerprint:
                return d
        if unfinished is None and not osp.exists(osp.join(d, COMPLETE)):
            unfinished = d
    return unfinished or (found[0] if found else None)


# a key present in one fingerprint only
_MISSING = object()


def describe_differences(saved: Any, current: Any, key: str = '') -> List[str]:
    """One line per differing leaf: its full key path and both full values.

    Dicts are compared key by key and lists of equal length item by item, so
    a changed ``eps`` reads ``config.test_cfg.attacks[0].eps: saved 8, this
    run 16``: the differing values in full, not whole config texts.
    """
    if saved == current:
        return []
    if isinstance(saved, dict) and isinstance(current, dict):
        return [
            line
            for k in sorted(set(saved) | set(current))
            for line in describe_differences(
                saved.get(k, _MISSING), current.get(k, _MISSING), f'{key}.{k}' if key else str(k)
            )
        ]
    if isinstance(saved, list) and isinstance(current, list) and len(saved) == len(current):
        return [
            line
            for i, (a, b) in enumerate(zip(saved, current))
            for line in describe_differences(a, b, f'{key}[{i}]')
        ]

    def text(value):
        return 'no such key' if value is _MISSING else json.dumps(value, sort_keys=True)

    return [f'  {key}: saved {text(saved)}, this run {text(current)}']


class EvaluationState:
    """The per-chunk result files of one evaluation.

    Every process calls the same methods in the same order (the folder is
    chosen and checked on all ranks alike, so they all fail alike).

    Args:
        directory (str): Folder of the state (created if missing).
        fingerprint (dict): What the results depend on, JSON-safe.
        resume (bool): Load the chunks already in ``directory``; its
            fingerprint must equal ``fingerprint``. Without it an existing
            state is an error (nothing is overwritten).
    """

    def __init__(self, directory: str, fingerprint: Dict[str, Any], resume: bool):
        self.directory = directory
        self.fingerprint = canonical(fingerprint)
        manifest = osp.join(directory, MANIFEST)
        saved = None
        if osp.isfile(manifest):
            with open(manifest) as f:
                saved = json.load(f)['fingerprint']
        if saved is not None and not resume:
            raise FileExistsError(
                f'{directory} already holds an evaluation state; pass '
                '--resume (test_cfg.resume=True) to continue it, or choose '
                'another --work-dir: it is never overwritten'
            )
        if saved is not None and saved != self.fingerprint:
            raise ValueError(
                f'--resume: the evaluation saved in {directory} differs from '
                'this one, so its chunks cannot be reused:\n'
                + '\n'.join(describe_differences(saved, self.fingerprint))
                + '\nRun without --resume (a new run folder) or with the '
                'settings of the saved evaluation.'
            )
        self.resumed = saved is not None
        barrier()  # every rank has read the old manifest before any writes
        if get_dist_info()[0] == 0:
            os.makedirs(directory, exist_ok=True)
            if saved is None:
                _write_json(
                    dict(fingerprint=self.fingerprint, created=time.strftime('%Y-%m-%d %H:%M:%S')),
                    manifest,
                )
        barrier()

    def _chunk_path(self, chunk_id: int) -> str:
        return osp.join(self.directory, f'chunk_{chunk_id:06d}.pth')

    def load(self, chunk_id: int) -> Optional[list]:
        """The saved results of a chunk, or None when it is not finished."""
        path = self._chunk_path(chunk_id)
        if not osp.isfile(path):
            return None
        problem = checkpoint_problem(path)
        if problem is not None:  # the same batch attacked again: same results
            print_log(
                f'{path}: {problem}: this batch is evaluated again',
                logger='current',
                level=logging.WARNING,
            )
            return None
        return torch.load(path, map_location='cpu', weights_only=True)

    def save(self, chunk_id: int, results: list) -> None:
        """Save a finished chunk's results (atomically)."""
        atomic_save(results, self._chunk_path(chunk_id))

    def mark_complete(self) -> None:
        """Record that every chunk is done (a later --resume skips it)."""
        barrier()
        if get_dist_info()[0] == 0:
            with open(osp.join(self.directory, COMPLETE), 'w') as f:
                f.write(time.strftime('%Y-%m-%d %H:%M:%S\n'))
