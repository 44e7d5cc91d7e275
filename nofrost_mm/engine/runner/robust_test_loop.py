"""Test loop measuring clean and adversarial accuracy in one pass over the data."""

import copy
import hashlib
import logging
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import DATASETS
from mmengine.runner import TestLoop, autocast
from mmengine.utils import ProgressBar
from mmpretrain.registry import LOOPS
from torch.utils.data import DataLoader

from nofrost_mm.attacks import (
    NormalizedClassifier,
    attack_context,
    attack_settings,
    build_attacks,
    format_settings,
    takes_sample_keys,
)
from nofrost_mm.attacks.attack_context import check_not_sharded
from nofrost_mm.attacks.mixed_precision import (
    PrecisionSafeClassifier,
    fp32_logits,
    fp32_predict,
    safe_precision,
)
from nofrost_mm.attacks.survivors import attack_survivors
from nofrost_mm.evaluation.gradient_masking import gradient_masking_warnings
from nofrost_mm.evaluation.robustness_report.attack_entries import restart_name
from nofrost_mm.utils import (
    LogOnce,
    cudnn_autotuning,
    fold_keys,
    model_memory_format,
    sample_keys,
    wait_for_ranks,
)
from nofrost_mm.utils.progress import NO_PROGRESS, ProgressReporter, takes_progress
from .evaluation_state import (
    STATE_DIR,
    EvaluationState,
    canonical,
    file_sha256,
    find_resumable_state,
)

__all__ = ['RobustTestLoop']


class _ChunkBatchSampler:
    """Batches that do not depend on the number of processes.

    The (sub)set is cut into consecutive chunks of ``batch_size`` samples;
    process ``r`` of ``w`` takes chunks ``r, r + w, ...``, so every chunk is
    attacked as the same batch, with the same seed, however many processes
    share the work. Processes with fewer samples end with one batch repeating
    their first samples (or the first samples of the set), so that all hold
    the same number of results as mmengine's result collection expects; those
    repeats come after the originals in the collected order and the robust
    metrics drop them by ``sample_idx``.
    """

    def __init__(self, num_samples: int, batch_size: int):
        rank, world_size = get_dist_info()
        chunks = [
            list(range(i, min(i + batch_size, num_samples)))
            for i in range(0, num_samples, batch_size)
        ]
        self.chunk_ids = list(range(rank, len(chunks), world_size))
        self.batches = [chunks[i] for i in self.chunk_ids]
        counts = [sum(len(c) for c in chunks[r::world_size]) for r in range(world_size)]
        missing = max(counts) - counts[rank]
        if missing:
            own = [i for b in self.batches for i in b] or list(range(num_samples))
            self.batches.append([own[i % len(own)] for i in range(missing)])
            self.chunk_ids.append(len(chunks) + rank)
        self.total = max(counts) * world_size

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


@LOOPS.register_module()
class RobustTestLoop(TestLoop):
    """Test loop reporting clean accuracy and accuracy under attacks.

    For every batch the loop predicts the clean images, then runs each
    configured attack (under ``torch.enable_grad()``, on the unwrapped model
    in eval mode with frozen parameters, through a
    :class:`NormalizedClassifier` taking [0, 1] images) on the samples still
    classified correctly, and records per sample whether it survived, with
    the attack's time. :class:`RobustAccuracy` turns that into clean and
    robust accuracy per attack, the worst case over all attacks and their
    times; any other metric of the evaluator gets the clean predictions.

    The plug-in's attacks (``PGDAttack`` and its variants, ``AutoAttack``)
    draw their random starts per sample, from ``seed`` and the sample's
    dataset index (:func:`nofrost_mm.utils.sample_keys`): a sample's result
    does not depend on the batch size, the number of processes or a resume
    point, and two attacks with the same random start start from the same
    point. For torchattacks' attacks, which draw from torch's global
    generator, it is reset before every attack from ``seed`` and the
    batch's position in the (sub)set; batches are the same consecutive
    chunks whatever the number of processes, so ``tools/dist_test.sh`` gives
    the numbers of one process for them too (at a given batch size).

    After evaluation a gradient-masking guard warns (naming both numbers)
    when, at the same norm and eps, an attack that should be stronger leaves
    more samples correct than a weaker one: an iterative attack above FGSM,
    AutoAttack above anything, or more steps of an attack above fewer steps.

    With ``cascade=True`` each attack runs only on the samples that survived
    every attack before it (as AutoAttack does inside): the worst case is the
    same as without the cascade (exactly so for attacks whose result for a
    sample does not depend on the rest of its batch; random starts are drawn
    anew for the survivors), at the cost of the survivors only, and the
    per-attack results are cumulative, named ``PGD-20+AutoAttack`` (survived
    both). The masking guard needs independent results and is off then.

    After every batch the per-sample results can be written to disk
    (``state_dir``, one file per chunk and process, atomically), so that a
    killed evaluation continues with ``resume=True`` (``tools/test.py
    --resume``) and ends with exactly the numbers of an uninterrupted run;
    see :class:`EvaluationState`.

    With attacks, rank 0 writes progress lines through mmengine's logger
    (the console and the run's log file) instead of a progress bar, at most
    one every ``progress_interval`` seconds: the batch and attack running,
    the samples attacked and still robust, the progress of the plug-in's
    attacks inside a batch (AutoAttack per member: steps, targets, samples
    broken and still robust), elapsed time and ETA; a line at the end of
    each AutoAttack member, and after the last batch the robust accuracy
    of each attack. They change no result.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader | dict): The test dataloader (config).
        evaluator (Evaluator | dict | list): Metrics; a
            :class:`RobustAccuracy` is added when none is given.
        attacks (Sequence[dict | str]): Attack configs of
            ``nofrost_mm.registry.ATTACKS`` with sizes in pixel units of 255,
            e.g. ``[dict(type='PGD', eps=8, alpha=2, steps=20),
            dict(type='AutoAttack', eps=8)]``; a ``name`` key names the
            result (default: type and steps, e.g. ``PGD-20``). Defaults to
            ``()`` (clean accuracy only).
        num_samples (int, optional): Evaluate a fixed random subset of this
            many samples (drawn with ``seed``, the same in every process).
            None uses the whole set. Defaults to None.
        seed (int): Seed of the subset and of the attacks. Defaults to 0.
        masking_tolerance (float): Accuracy points by which a stronger
            attack may exceed a weaker one before the guard warns.
            Defaults to 0.
        fp16 (bool): Run the attacks under autocast (``tools/test.py
            --amp``; fp16 on CUDA, bf16 on a CPU): those safe in reduced
            precision (``amp_safe``: the plug-in's attacks, some torchattacks
            ones) through a :class:`PrecisionSafeClassifier`, the others in
            fp32 with a log line; an attack whose fp16 gradients overflowed
            attacks its survivors again in fp32. The clean and adversarial
            predictions are fp32 whatever this flag; the metrics say which
            precision each attack ran in (``precision/<attack>``).
            Defaults to False.
        cascade (bool): Attack only the survivors of the previous attacks;
            results are then cumulative. Defaults to False.
        state_dir (str, optional): Keep per-chunk results in this folder
            (``'auto'``: ``robust_eval_state`` in the run's log folder);
            None keeps none. Defaults to None (``tools/test.py`` sets 'auto').
        resume (bool | str): Continue the newest evaluation state of the work
            dir with this fingerprint (config, checkpoint, attacks, subset,
            world size; a finished one is read back whole), else the newest
            unfinished or finished one, which must match: an error names
            what differs (True); or the state in the given folder. Defaults
            to False.
        progress_interval (float, optional): Seconds between two progress
            lines (0: every step); None draws mmengine's progress bar
            instead (one tick per batch). Defaults to 30.

    Example:
        >>> test_cfg = dict(type='RobustTestLoop', num_samples=1000, attacks=[
        ...     dict(type='FGSM', eps=8), dict(type='PGD', eps=8, steps=20),
        ...     dict(type='AutoAttack', eps=8, version='standard')])
    """

    # each attack's last line on every batch, or only when one is due
    line_per_attack = False

    def __init__(
        self,
        runner,
        dataloader: Union[DataLoader, Dict],
        evaluator,
        attacks: Sequence[Union[dict, str]] = (),
        num_samples: Optional[int] = None,
        seed: int = 0,
        masking_tolerance: float = 0.0,
        fp16: bool = False,
        cascade: bool = False,
        state_dir: Optional[str] = None,
        resume: Union[bool, str] = False,
        progress_interval: Optional[float] = 30.0,
    ):
        # configuration errors surface before data or checkpoint are loaded
        if not isinstance(cascade, bool):
            raise ValueError(f'test_cfg.cascade must be True or False, got {cascade!r}')
        self.cascade = cascade
        self._plan_attacks(attacks)
        if progress_interval is not None and (
            isinstance(progress_interval, bool)
            or not isinstance(progress_interval, (int, float))
            or not progress_interval >= 0
        ):
            raise ValueError(
                'test_cfg.progress_interval must be None (a progress '
                'bar) or a number of seconds >= 0, got '
                f'{progress_interval!r}'
            )
        self.progress_interval = progress_interval
        self.reporter = NO_PROGRESS
        # attacks that run in fp32 under test_cfg.fp16: said once each
        self._log_once = LogOnce(logging.INFO)
        if state_dir is not None and not isinstance(state_dir, str):
            raise ValueError(
                f'test_cfg.state_dir must be None, \'auto\' or a folder, got {state_dir!r}'
            )
        if not isinstance(resume, (bool, str)):
            raise ValueError(
                'test_cfg.resume must be True, False or the folder of '
                f'an evaluation state, got {resume!r}'
            )
        if isinstance(resume, str) and not osp.isdir(resume):
            raise FileNotFoundError(f'test_cfg.resume: {resume}: no such folder')
        self.state_dir = state_dir
        self.resume = resume
        self.state: Optional[EvaluationState] = None
        if num_samples is not None and (
            not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1
        ):
            raise ValueError(
                f'test_cfg.num_samples must be None or an int >= 1, got {num_samples!r}'
            )
        if not isinstance(seed, int):
            raise ValueError(f'test_cfg.seed must be an int, got {seed!r}')
        self.num_samples = num_samples
        self.seed = seed
        self.masking_tolerance = masking_tolerance
        self.warnings: List[str] = []
        if not isinstance(dataloader, dict):
            raise TypeError(
                'RobustTestLoop builds its own batches: give the test dataloader as a config dict'
            )
        dataloader = self._chunked_dataloader_cfg(dataloader)
        super().__init__(runner, dataloader, evaluator, fp16)
        self._check_metrics()

    def _plan_attacks(self, attacks: Sequence[Union[dict, str]]) -> None:
        """Build the attacks, and for each the name of its result, the result
        whose survivors it attacks and how many runs it makes."""
        self.attacks = build_attacks(attacks)
        names = [name for name, _, _ in self.attacks]
        # where each attack starts from: the clean-correct samples, or the
        # survivors of the attacks before it (the cascade)
        if self.cascade:
            self.result_names = ['+'.join(names[: i + 1]) for i in range(len(names))]
            self.start_from = ['clean'] + self.result_names[:-1]
        else:
            self.result_names, self.start_from = names, ['clean'] * len(names)
        # one run each; RobustnessReportLoop's entries restart
        self.restarts = [1] * len(names)

    def _chunked_dataloader_cfg(self, cfg: dict) -> dict:
        cfg = copy.deepcopy(cfg)
        self._subset = None  # indices of the seeded subset, if any
        dataset = cfg['dataset']
        if isinstance(dataset, dict):
            dataset = DATASETS.build(dataset)
            if hasattr(dataset, 'full_init'):
                dataset.full_init()
        if self.num_samples is not None:
            if self.num_samples > len(dataset):
                raise ValueError(
                    f'test_cfg.num_samples={self.num_samples} is larger than '
                    f'the test set ({len(dataset)} samples)'
                )
            rng = np.random.default_rng(self.seed)
            subset = np.sort(rng.choice(len(dataset), self.num_samples, replace=False)).tolist()
            dataset.get_subset_(subset)
            self._subset = subset
        cfg['dataset'] = dataset
        batch_size = cfg.pop('batch_size')
        self._batch_sampler = _ChunkBatchSampler(len(dataset), batch_size)
        cfg['batch_sampler'] = self._batch_sampler
        cfg['sampler'] = dict(type='DefaultSampler', shuffle=False)
        return cfg

    def _check_metrics(self):
        from nofrost_mm.evaluation.metrics import RobustAccuracy

        metrics = self.evaluator.metrics
        robust = [m for m in metrics if isinstance(m, RobustAccuracy)]
        if not robust:
            robust = [RobustAccuracy()]
            robust[0].dataset_meta = self.evaluator.dataset_meta
            metrics.append(robust[0])
        self.robust_metric = robust[0]
        _, world_size = get_dist_info()
        others = [type(m).__name__ for m in metrics if not getattr(m, 'dedup_by_sample_idx', False)]
        if world_size > 1 and others:
            raise ValueError(
                f'test_evaluator: {others} cannot be computed exactly by '
                f'RobustTestLoop with {world_size} processes (its batches '
                'pad some ranks); use RobustAccuracy alone, which also '
                'reports clean accuracy'
            )

    def run(self) -> dict:
        """Launch the test; returns the metrics."""
        self.runner.call_hook('before_test')
        self.runner.call_hook('before_test_epoch')
        self.runner.model.eval()
        model = self.runner.model
        check_not_sharded(model)  # FSDP's module is this rank's shard
        if is_model_wrapper(model):
            model = model.module
        net = NormalizedClassifier.from_preprocessor(model).eval()
        self.state = self._open_state()
        rank, world_size = get_dist_info()
        if rank == 0 and self.attacks:
            # what runs, before it runs (a bare name's eps and step included)
            print_log(
                'attacks (sizes in pixel units of 255): '
                + '; '.join(format_settings(name, s) for name, s in self.attack_settings.items()),
                logger='current',
            )
        # progress lines where attacks make batches long, else the bar
        self.reporter = (
            ProgressReporter(self.progress_interval) if rank == 0 and self.attacks else NO_PROGRESS
        )
        bar = ProgressBar(len(self.dataloader)) if rank == 0 and not self.reporter.enabled else None
        reused = 0
        n = len(self.dataloader)
        if self.reporter.enabled:
            print_log(
                f'robust test: {n} batch{"es" if n > 1 else ""}'
                + (f' (of rank 0; {world_size} processes)' if world_size > 1 else '')
                + f', attacks {", ".join(self.result_names)}; a progress line at most '
                f'every {self.progress_interval:g} s (test_cfg.progress_interval)',
                logger='current',
            )
        survive = dict.fromkeys(['clean'] + self.result_names, 0)
        total = 0
        with self.reporter.task('robust test', chain=False) as progress:
            for idx, data_batch in enumerate(self.dataloader):
                chunk = self._batch_sampler.chunk_ids[idx]
                results = self.state.load(chunk) if self.state else None
                if results is None:
                    with self.reporter.task(f'batch {idx + 1}/{n}'):
                        results = self.run_iter(idx, data_batch, net)
                    if self.state is not None:
                        self.state.save(chunk, results)
                else:  # finished before the run was killed: the same results
                    self.evaluator.process(data_samples=results, data_batch=data_batch)
                    reused += 1
                if bar is not None:
                    bar.update()
                if self.reporter.enabled:
                    total += len(results)
                    for r in results:
                        for k, ok in r.get('robust_correct', {}).items():
                            survive[k] = survive.get(k, 0) + ok
                    progress.update(
                        idx + 1,
                        n,
                        status=lambda: (
                            f'{idx + 1}/{n} batches, correct so far: '
                            + ', '.join(f'{k} {v}/{total}' for k, v in survive.items())
                        ),
                    )
            progress.end(
                lambda: (
                    f'{n}/{n} batches, accuracy: '
                    + ', '.join(
                        f'{k} {v}/{total} ({100 * v / max(total, 1):.1f}%)'
                        for k, v in survive.items()
                    )
                ),
                always=True,
            )
        if bar is not None:
            print()
        if reused and rank == 0:
            print_log(
                f'--resume: {reused} of {len(self.dataloader)} batches of this '
                f'process read from {self.state.directory}',
                logger='current',
            )
        # the ranks' shards can end hours apart: they meet without a pending
        # collective, then gather the results at once (rank_wait.py)
        wait_for_ranks('robust test')
        metrics = self.evaluator.evaluate(self._batch_sampler.total)
        if self.state is not None:
            self.state.mark_complete()
        self.warnings = (
            []
            if self.cascade
            else gradient_masking_warnings(
                self.attacks, metrics, self.robust_metric.prefix, self.masking_tolerance
            )
        )
        if rank == 0:
            for msg in self.warnings:
                print_log(msg, logger='current', level=30)
        self.runner.call_hook('after_test_epoch', metrics=metrics)
        self.runner.call_hook('after_test')
        return metrics

    @property
    def attack_settings(self) -> Dict[str, dict]:
        """What each attack runs with, by name: eps, step, steps, queries,
        restarts (:func:`nofrost_mm.attacks.attack_settings`)."""
        return {name: attack_settings(attack) for name, attack, _ in self.attacks}

    def fingerprint(self) -> dict:
        """What the per-sample results depend on (compared on --resume)."""
        cfg = self.runner.cfg
        # where results are kept and how progress shows change no result
        test_cfg = {
            k: v
            for k, v in dict(cfg.get('test_cfg') or {}).items()
            if k not in ('resume', 'state_dir', 'progress_interval', 'progress')
        }
        # NoFrostRunner keeps the load_from it was given (a runner built
        # without a config has none in cfg)
        inputs = getattr(self.runner, 'run_inputs', None)
        checkpoint = getattr(inputs, 'load_from', None) or cfg.get('load_from')
        # how data is loaded does not change the results; what is loaded does
        loader = {
            k: v
            for k, v in dict(cfg.get('test_dataloader') or {}).items()
            if k not in ('num_workers', 'pin_memory', 'persistent_workers')
        }
        dataset = self.dataloader.dataset
        subset = self._subset or list(range(len(dataset)))
        return dict(
            config=canonical(
                dict(
                    model=cfg.get('model'),
                    data_preprocessor=cfg.get('data_preprocessor'),
                    test_dataloader=loader,
                    test_evaluator=cfg.get('test_evaluator'),
                    test_cfg=test_cfg,
                )
            ),
            # the weights, wherever the file lies now
            checkpoint_sha256=file_sha256(checkpoint)
            if checkpoint is not None and osp.isfile(checkpoint)
            else checkpoint,
            attacks=canonical([c for _, _, c in self.attacks]),
            cascade=self.cascade,
            subset=dict(
                num_samples=len(dataset),
                seed=self.seed,
                sha1=hashlib.sha1(str(subset).encode()).hexdigest(),
            ),
            world_size=get_dist_info()[1],
        )

    def _open_state(self) -> Optional[EvaluationState]:
        if not self.state_dir and not self.resume:
            return None
        work_dir = self.runner.work_dir
        fingerprint = self.fingerprint()
        if isinstance(self.resume, str):
            directory = self.resume
        elif self.resume:
            directory = find_resumable_state(work_dir, fingerprint)
            if directory is None:
                print_log(
                    f'--resume: no evaluation state under {work_dir}; '
                    'starting from the first batch',
                    logger='current',
                )
        else:
            directory = None
        if directory is None:
            directory = (
                self.state_dir
                if self.state_dir not in (None, 'auto')
                else osp.join(self.runner.log_dir, STATE_DIR)
            )
        state = EvaluationState(directory, fingerprint, bool(self.resume))
        if get_dist_info()[0] == 0:
            print_log(
                f'per-batch results kept in {directory} '
                f'({"resumed" if state.resumed else "new"}; tools/test.py '
                '--resume continues a killed run)',
                logger='current',
            )
        return state

    @torch.no_grad()
    def run_iter(self, idx: int, data_batch: dict, net: NormalizedClassifier) -> List[dict]:
        """Clean predictions and every attack on one batch.

        Returns:
            list[dict]: The per-sample results given to the evaluator.
        """
        self.runner.call_hook('before_test_iter', batch_idx=idx, data_batch=data_batch)
        inputs = data_batch['inputs']
        if isinstance(inputs, (list, tuple)):
            if len({tuple(x.shape) for x in inputs}) > 1:
                raise ValueError(
                    'RobustTestLoop: test images must share one '
                    'size (add a resize/crop to the test pipeline)'
                )
            inputs = torch.stack(inputs)
        device = next(net.classifier.parameters()).device
        # the model's layout: no conversion in every conv
        images = (inputs.to(device).float() / 255.0).contiguous(
            memory_format=model_memory_format(net.classifier)
        )
        data_samples = data_batch['data_samples']
        labels = torch.cat([ds.gt_label for ds in data_samples]).to(device)
        keys = sample_keys(self.seed, [ds.sample_idx for ds in data_samples], device)

        # the decisions of record are fp32 (autocast only inside attacks)
        logits = fp32_logits(net, images)
        correct = {'clean': logits.argmax(1) == labels}
        seconds = {}
        self._precisions = {}
        # survivor batches change size: no cuDNN autotuning for each size
        with attack_context(net.classifier), cudnn_autotuning(False):
            per_sample = self.attack_batch(idx, net, images, labels, keys, correct, seconds)
        precision = {
            name: self._precisions.get(id(attack)) or self._precision(attack, images.device.type)
            for name, attack, _ in self.attacks
        }

        scores = logits.softmax(1).cpu()
        # the per-sample results on the host in one copy (float64 holds the
        # bools and the float32 values exactly), not a read per sample
        host = dict(
            zip(
                list(correct) + list(per_sample),
                torch.stack(
                    [v.double() for v in list(correct.values()) + list(per_sample.values())]
                )
                .cpu()
                .tolist(),
            )
        )
        for i, ds in enumerate(data_samples):
            ds.set_pred_score(scores[i]).set_pred_label(scores[i].argmax())
            ds.set_metainfo(
                dict(
                    robust_correct={k: bool(host[k][i]) for k in correct},
                    attack_seconds={k: v / len(data_samples) for k, v in seconds.items()},
                    attack_precision=precision,
                    **{k: host[k][i] for k in per_sample},
                )
            )
        results = [ds.to_dict() for ds in data_samples]
        self.evaluator.process(data_samples=results, data_batch=data_batch)
        self.runner.call_hook(
            'after_test_iter', batch_idx=idx, data_batch=data_batch, outputs=data_samples
        )
        return results

    def _seed(self, chunk: int, restart: int) -> int:
        """Seed of torch's generator for run ``restart`` of the attacks on
        chunk ``chunk``: the same in any process. Attacks with a random
        start share it, so PGD-5 ... PGD-100 differ only in their steps
        (each attack runs once here: ``restart`` is 0)."""
        return (self.seed * 1_000_003 + chunk) % 2**31

    def sample_values(
        self, net: NormalizedClassifier, images: torch.Tensor, labels: torch.Tensor
    ) -> Dict[str, torch.Tensor]:
        """Per-sample values to record besides the attacks' results, each a
        tensor of one value per sample (none here)."""
        return {}

    def attack_batch(
        self,
        idx: int,
        net: NormalizedClassifier,
        images: torch.Tensor,
        labels: torch.Tensor,
        keys: torch.Tensor,
        correct: Dict[str, torch.Tensor],
        seconds: Dict[str, float],
    ) -> Dict[str, torch.Tensor]:
        """Run every attack on the samples it starts from, in batch ``idx``.

        ``keys`` are the samples' random keys (:func:`sample_keys`); run
        ``r`` of an attack that restarts draws from the keys folded with
        ``r`` (run 0 from ``keys`` themselves, as a single run of the same
        attack would). Fills ``correct[name]`` (per-sample bools) and
        ``seconds[name]`` for every result (the first run under the
        attack's result name, all runs under :func:`restart_name`);
        returns :meth:`sample_values`.
        """
        values = self.sample_values(net, images, labels)
        chunk = self._batch_sampler.chunk_ids[idx]
        for (_, attack, _), name, start_from, restarts in zip(
            self.attacks, self.result_names, self.start_from, self.restarts
        ):
            start = time.perf_counter()
            survived = correct[start_from].clone()
            with self.reporter.task(name) as task:
                task.update(status=self._attacked(survived))
                for r in range(restarts):
                    if r:
                        task.update(
                            r,
                            restarts,
                            status=lambda: (
                                f'restart {r + 1}/{restarts} on {int(survived.sum())} '
                                'surviving samples'
                            ),
                        )
                    self.attack_survivors(
                        net,
                        attack,
                        images,
                        labels,
                        keys if r == 0 else fold_keys(keys, r),
                        survived,
                        self._seed(chunk, r),
                    )
                    if r == 0:
                        correct[name] = survived.clone()
                        seconds[name] = time.perf_counter() - start
                names = [name]
                if restarts > 1:
                    names.append(restart_name(name, restarts))
                    correct[names[1]] = survived
                    seconds[names[1]] = time.perf_counter() - start
                task.end(self._survived(correct, seconds, names), always=self.line_per_attack)
        return values

    @staticmethod
    def _attacked(survived: torch.Tensor):
        """An attack's first line: how many samples it attacks (a callable:
        counted when written)."""
        return lambda: f'started on {int(survived.sum())} of {len(survived)} samples'

    @staticmethod
    def _survived(correct: Dict[str, torch.Tensor], seconds: Dict[str, float], names: List[str]):
        """An attack's last line (a callable: counted when written): how
        many samples survive its result, or each of its results and times."""
        if len(names) == 1:
            return lambda: f'{int(correct[names[0]].sum())}/{len(correct[names[0]])} survive'
        return lambda: ', '.join(
            f'{k} {int(correct[k].sum())}/{len(correct[k])} survive ({seconds[k]:.1f} s)'
            for k in names
        )

    def attack_survivors(
        self,
        net: NormalizedClassifier,
        attack,
        images: torch.Tensor,
        labels: torch.Tensor,
        keys: torch.Tensor,
        survived: torch.Tensor,
        seed: int,
    ) -> None:
        """Attack the samples marked in ``survived``; unmark those broken.

        The plug-in's attacks draw from the survivors' ``keys``; torchattacks'
        attacks from torch's generator, seeded with ``seed``.
        """
        extra = (
            dict(progress=self.reporter) if self.reporter.enabled and takes_progress(attack) else {}
        )

        def attack_rows(model, reduced: bool):
            def run(rows):
                torch.manual_seed(seed)
                kwargs = dict(extra, keys=keys[rows]) if takes_sample_keys(attack) else extra
                with torch.enable_grad(), autocast(enabled=reduced):
                    return attack(model, images[rows], labels[rows], **kwargs)

            return run

        def predict(adv, rows):
            return fp32_predict(net, adv)

        precision = self._precision(attack, images.device.type)
        model = net if precision == 'fp32' else self._precision_safe(net)
        rows, _ = attack_survivors(
            attack_rows(model, precision != 'fp32'), labels, survived, predict
        )
        if not len(rows):
            return
        # one sync per attack and batch, not per step
        overflows = 0 if precision == 'fp32' else model.overflows.count
        if overflows:
            print_log(
                f'{attack!r}: {overflows} input-gradient rows overflowed in '
                f'{precision}; its survivors are attacked again in fp32',
                logger='current',
                level=30,
            )
            precision += '+fp32'
            attack_survivors(attack_rows(net, False), labels, survived, predict)
        self._precisions[id(attack)] = precision

    def _precision(self, attack, device_type: str) -> str:
        """'fp32', 'fp16' or 'bf16': what ``attack`` runs in here; an attack
        not safe in reduced precision runs in fp32 (logged once)."""
        if not self.fp16:
            return 'fp32'
        with autocast(enabled=True):
            return safe_precision(attack, device_type, self._log_once, repr(attack))

    def _precision_safe(self, net: NormalizedClassifier) -> PrecisionSafeClassifier:
        """The loop's one safe wrapper of ``net`` (a stable model for the
        attacks that cache it), its overflow count reset."""
        safe = getattr(self, '_safe_net', None)
        if safe is None or safe.model_fn is not net:
            safe = self._safe_net = PrecisionSafeClassifier(net)
        safe.overflows.reset()
        return safe
