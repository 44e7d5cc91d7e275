"""Accuracy per corruption and severity, mean corruption accuracy and mCE."""

from collections import defaultdict
from typing import List, Sequence

from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmpretrain.registry import METRICS

from nofrost_mm.datasets.transforms.corruption_functions import (
    ALEXNET_ERRORS,
    IMAGENET_C_CORRUPTIONS,
)
from .robust_accuracy import dedup_by_sample_idx


@METRICS.register_module()
class CorruptionAccuracy(BaseMetric):
    """Top-1 accuracy under common corruptions (ImageNet-C protocol).

    Needs ``corruption`` and ``severity`` in every data sample (from
    :class:`CorruptedDataset`, :class:`ImageNetC` or :class:`CIFAR10C`, kept
    by ``PackInputs``'s ``meta_keys``). Reports, in percent:

    - ``corruption/<name>/<severity>``: accuracy per corruption and severity;
    - ``corruption/<name>``: mean over the severities evaluated;
    - ``corruption/mean_accuracy``: mean over corruptions of the above;
    - ``corruption/mCE`` (when ``mce=True``): the ImageNet-C mean corruption
      error, ``mean_c(sum_s err_{c,s} / sum_s err^AlexNet_{c,s})``, with the
      AlexNet errors of Hendrycks & Dietterich; it needs all 15 ImageNet-C
      corruptions at all 5 severities, so it is only meaningful on ImageNet-C.

    Args:
        mce (bool): Also report mCE normalised by AlexNet (ImageNet only).
            Defaults to False.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Defaults to ``'corruption'``.

    Example:
        >>> test_evaluator = dict(type='CorruptionAccuracy', mce=True)
    """

    default_prefix = 'corruption'
    dedup_by_sample_idx = True

    def __init__(self, mce: bool = False, collect_device: str = 'cpu', prefix=None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not isinstance(mce, bool):
            raise ValueError(f'CorruptionAccuracy.mce must be a bool, got {mce!r}')
        self.mce = mce

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for ds in data_samples:
            if 'corruption' not in ds or 'severity' not in ds:
                raise KeyError(
                    'CorruptionAccuracy: data samples lack corruption/severity; '
                    "add meta_keys=('sample_idx', 'corruption', 'severity') to "
                    'PackInputs and use CorruptedDataset, ImageNetC or CIFAR10C'
                )
            pred = ds['pred_score'].argmax() if 'pred_score' in ds else ds['pred_label']
            self.results.append(
                dict(
                    sample_idx=int(ds['sample_idx']),
                    corruption=ds['corruption'],
                    severity=int(ds['severity']),
                    correct=bool(int(pred) == int(ds['gt_label'])),
                )
            )

    def compute_metrics(self, results: List[dict]) -> dict:
        results = dedup_by_sample_idx(results)
        hits = defaultdict(list)
        for r in results:
            hits[(r['corruption'], r['severity'])].append(r['correct'])
        acc = {k: 100.0 * sum(v) / len(v) for k, v in hits.items()}
        metrics = {f'{c}/{s}': a for (c, s), a in sorted(acc.items())}
        per_corruption = {}
        for c in dict.fromkeys(c for c, _ in acc):
            values = [a for (cc, _), a in acc.items() if cc == c]
            per_corruption[c] = sum(values) / len(values)
            metrics[c] = per_corruption[c]
        metrics['mean_accuracy'] = sum(per_corruption.values()) / len(per_corruption)
        if self.mce:
            missing = [
                (c, s) for c in IMAGENET_C_CORRUPTIONS for s in range(1, 6) if (c, s) not in acc
            ]
            if missing:
                print_log(
                    f'CorruptionAccuracy: no mCE, {len(missing)} of the 75 '
                    f'ImageNet-C (corruption, severity) pairs are missing, '
                    f'e.g. {missing[0]}',
                    logger='current',
                    level=30,
                )
            else:
                ces = [
                    sum(100.0 - acc[(c, s)] for s in range(1, 6)) / 100.0 / (5 * ALEXNET_ERRORS[c])
                    for c in IMAGENET_C_CORRUPTIONS
                ]
                metrics['mCE'] = 100.0 * sum(ces) / len(ces)
        return metrics
