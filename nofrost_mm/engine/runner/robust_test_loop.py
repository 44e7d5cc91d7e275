"""Test loop measuring clean and adversarial accuracy in one pass over the data."""
import copy
import math
import time
from typing import Dict, List, Optional, Sequence, Tuple, Union

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

from nofrost_mm.attacks import NormalizedClassifier, attack_context, build_attack
from nofrost_mm.registry import ATTACKS

# robust-accuracy ordering used by the gradient-masking guard: at the same
# norm and eps, an attack of a higher tier should never leave more samples
# correct than one of a lower tier (nor more steps of the same attack)
SINGLE_STEP = ('FGSM', 'FFGSM')
ITERATIVE = ('PGD', 'PGDAttack', 'CWLinf', 'BIM', 'MIFGSM', 'APGD', 'APGDT',
             'UPGD', 'EOTPGD', 'NIFGSM', 'VMIFGSM', 'VNIFGSM', 'SINIFGSM',
             'PGDL2')
ENSEMBLE = ('AutoAttack', )


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
        chunks = [list(range(i, min(i + batch_size, num_samples)))
                  for i in range(0, num_samples, batch_size)]
        self.chunk_ids = list(range(rank, len(chunks), world_size))
        self.batches = [chunks[i] for i in self.chunk_ids]
        counts = [sum(len(c) for c in chunks[r::world_size])
                  for r in range(world_size)]
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

    The random state is reset before every attack from ``seed`` and the
    batch's position in the (sub)set (two attacks with the same random start
    start from the same point), and batches are the same consecutive chunks whatever the number of
    processes, so ``tools/dist_test.sh`` gives the numbers of one process.

    After evaluation a gradient-masking guard warns (naming both numbers)
    when, at the same norm and eps, an attack that should be stronger leaves
    more samples correct than a weaker one: an iterative attack above FGSM,
    AutoAttack above anything, or more steps of an attack above fewer steps.

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
        fp16 (bool): Run the model under autocast. Defaults to False.

    Example:
        >>> test_cfg = dict(type='RobustTestLoop', num_samples=1000, attacks=[
        ...     dict(type='FGSM', eps=8), dict(type='PGD', eps=8, steps=20),
        ...     dict(type='AutoAttack', eps=8, version='standard')])
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 evaluator,
                 attacks: Sequence[Union[dict, str]] = (),
                 num_samples: Optional[int] = None,
                 seed: int = 0,
                 masking_tolerance: float = 0.,
                 fp16: bool = False):
        # configuration errors surface before data or checkpoint are loaded
        self.attacks = build_attacks(attacks)
        if num_samples is not None and (not isinstance(num_samples, int)
                                        or isinstance(num_samples, bool)
                                        or num_samples < 1):
            raise ValueError('test_cfg.num_samples must be None or an int >= 1, '
                             f'got {num_samples!r}')
        if not isinstance(seed, int):
            raise ValueError(f'test_cfg.seed must be an int, got {seed!r}')
        self.num_samples = num_samples
        self.seed = seed
        self.masking_tolerance = masking_tolerance
        self.warnings: List[str] = []
        if not isinstance(dataloader, dict):
            raise TypeError('RobustTestLoop builds its own batches: give the '
                            'test dataloader as a config dict')
        dataloader = self._chunked_dataloader_cfg(dataloader)
        super().__init__(runner, dataloader, evaluator, fp16)
        self._check_metrics()

    def _chunked_dataloader_cfg(self, cfg: dict) -> dict:
        cfg = copy.deepcopy(cfg)
        dataset = cfg['dataset']
        if isinstance(dataset, dict):
            dataset = DATASETS.build(dataset)
            if hasattr(dataset, 'full_init'):
                dataset.full_init()
        if self.num_samples is not None:
            if self.num_samples > len(dataset):
                raise ValueError(
                    f'test_cfg.num_samples={self.num_samples} is larger than '
                    f'the test set ({len(dataset)} samples)')
            rng = np.random.default_rng(self.seed)
            subset = np.sort(rng.choice(len(dataset), self.num_samples,
                                        replace=False)).tolist()
            dataset.get_subset_(subset)
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
        others = [type(m).__name__ for m in metrics
                  if not getattr(m, 'dedup_by_sample_idx', False)]
        if world_size > 1 and others:
            raise ValueError(
                f'test_evaluator: {others} cannot be computed exactly by '
                f'RobustTestLoop with {world_size} processes (its batches '
                'pad some ranks); use RobustAccuracy alone, which also '
                'reports clean accuracy')

    def run(self) -> dict:
        """Launch the test; returns the metrics."""
        self.runner.call_hook('before_test')
        self.runner.call_hook('before_test_epoch')
        self.runner.model.eval()
        model = self.runner.model
        if is_model_wrapper(model):
            model = model.module
        preprocessor = model.data_preprocessor
        mean = getattr(preprocessor, 'mean', None)
        std = getattr(preprocessor, 'std', None)
        if not getattr(preprocessor, '_enable_normalize', mean is not None):
            mean = std = None
        net = NormalizedClassifier(
            model, mean, std,
            to_rgb=getattr(preprocessor, '_channel_conversion', False)).eval()
        rank, _ = get_dist_info()
        bar = ProgressBar(len(self.dataloader)) if rank == 0 else None
        for idx, data_batch in enumerate(self.dataloader):
            self.run_iter(idx, data_batch, net)
            if bar is not None:
                bar.update()
        if bar is not None:
            print()
        metrics = self.evaluator.evaluate(self._batch_sampler.total)
        self.warnings = gradient_masking_warnings(
            self.attacks, metrics, self.robust_metric.prefix,
            self.masking_tolerance)
        if rank == 0:
            for msg in self.warnings:
                print_log(msg, logger='current', level=30)
        self.runner.call_hook('after_test_epoch', metrics=metrics)
        self.runner.call_hook('after_test')
        return metrics

    @torch.no_grad()
    def run_iter(self, idx: int, data_batch: dict, net: NormalizedClassifier):
        """Clean predictions and every attack on one batch."""
        self.runner.call_hook('before_test_iter', batch_idx=idx,
                              data_batch=data_batch)
        inputs = data_batch['inputs']
        if isinstance(inputs, (list, tuple)):
            if len({tuple(x.shape) for x in inputs}) > 1:
                raise ValueError('RobustTestLoop: test images must share one '
                                 'size (add a resize/crop to the test pipeline)')
            inputs = torch.stack(inputs)
        device = next(net.classifier.parameters()).device
        images = inputs.to(device).float() / 255.
        data_samples = data_batch['data_samples']
        labels = torch.cat([ds.gt_label for ds in data_samples]).to(device)

        with autocast(enabled=self.fp16):
            logits = net(images).float()
        correct = {'clean': logits.argmax(1) == labels}
        seconds = {}
        with attack_context(net.classifier):
            per_sample = self.attack_batch(
                idx, net, images, labels, correct, seconds)

        scores = logits.softmax(1)
        for i, ds in enumerate(data_samples):
            ds.set_pred_score(scores[i]).set_pred_label(scores[i].argmax())
            ds.set_metainfo(dict(
                robust_correct={k: bool(v[i]) for k, v in correct.items()},
                attack_seconds={k: v / len(data_samples)
                                for k, v in seconds.items()},
                **{k: float(v[i]) for k, v in per_sample.items()}))
        self.evaluator.process(data_samples=data_samples, data_batch=data_batch)
        self.runner.call_hook('after_test_iter', batch_idx=idx,
                              data_batch=data_batch, outputs=data_samples)

    def attack_batch(self, idx: int, net: NormalizedClassifier,
                     images: torch.Tensor, labels: torch.Tensor,
                     correct: Dict[str, torch.Tensor],
                     seconds: Dict[str, float]) -> Dict[str, torch.Tensor]:
        """Run every attack on the clean-correct samples of batch ``idx``.

        Fills ``correct[name]`` (per-sample bools) and ``seconds[name]``;
        returns extra per-sample values to record (none here).
        """
        # same draws for this chunk in any number of processes; attacks
        # with the same random start then start alike
        seed = (self.seed * 1_000_003 + self._batch_sampler.chunk_ids[idx]) \
            % 2**31
        for name, attack, _ in self.attacks:
            start = time.perf_counter()
            survived = correct['clean'].clone()
            self.attack_survivors(net, attack, images, labels, survived, seed)
            seconds[name] = time.perf_counter() - start
            correct[name] = survived
        return {}

    def attack_survivors(self, net: NormalizedClassifier, attack,
                         images: torch.Tensor, labels: torch.Tensor,
                         survived: torch.Tensor, seed: int) -> None:
        """Attack the samples marked in ``survived``; unmark those broken."""
        todo = survived.nonzero().squeeze(1)
        if not len(todo):
            return
        torch.manual_seed(seed)
        with torch.enable_grad(), autocast(enabled=self.fp16):
            adv = attack(net, images[todo], labels[todo])
        with autocast(enabled=self.fp16):
            survived[todo] = net(adv).argmax(1) == labels[todo]


def gradient_masking_warnings(attacks: Sequence[tuple], metrics: dict,
                              prefix: Optional[str] = 'robust',
                              tolerance: float = 0.) -> List[str]:
    """Messages for stronger attacks that leave more samples correct.

    Args:
        attacks (Sequence[tuple]): ``(name, attack, cfg)`` from
            :func:`build_attacks`.
        metrics (dict): Accuracies in percent under ``prefix/name``.
        prefix (str, optional): Metric prefix. Defaults to 'robust'.
        tolerance (float): Points a stronger attack may exceed a weaker one
            by without a warning. Defaults to 0.

    Returns:
        list[str]: One message per suspicious pair, naming both numbers.
    """
    specs = []
    for name, attack, cfg in attacks:
        key = f'{prefix}/{name}' if prefix else name
        eps = getattr(attack, 'eps', None)
        tier = 1 if cfg['type'] in SINGLE_STEP else \
            2 if cfg['type'] in ITERATIVE else \
            3 if cfg['type'] in ENSEMBLE else None
        if key in metrics and eps is not None and tier is not None:
            specs.append(dict(name=name, type=cfg['type'], tier=tier,
                              norm=getattr(attack, 'norm', 'Linf'),
                              eps=float(eps),
                              steps=getattr(attack, 'steps', None) or 0,
                              acc=metrics[key]))
    msgs = []
    for weak in specs:
        for strong in specs:
            if weak['norm'] != strong['norm'] or \
                    not math.isclose(weak['eps'], strong['eps']):
                continue
            stronger = strong['tier'] > weak['tier'] or (
                strong['type'] == weak['type'] and strong['steps'] > weak['steps'])
            if stronger and strong['acc'] > weak['acc'] + tolerance:
                msgs.append(
                    f"possible gradient masking: robust accuracy under "
                    f"{strong['name']} ({strong['acc']:.2f}%) is above that "
                    f"under the weaker {weak['name']} ({weak['acc']:.2f}%) at "
                    f"{weak['norm']} eps {weak['eps']:g}/255; check the "
                    "attacks (more steps, restarts, AutoAttack) before "
                    "trusting these numbers")
    return msgs
