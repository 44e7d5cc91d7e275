"""Clean and adversarial accuracy, per attack and worst case, from RobustTestLoop."""

from collections import OrderedDict
from typing import List, Sequence

from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS


def dedup_by_sample_idx(results: List[dict]) -> List[dict]:
    """Keep the first result of every ``sample_idx`` (drops the padding
    repeats of distributed evaluation), sorted by ``sample_idx``."""
    unique = OrderedDict()
    for res in results:
        unique.setdefault(res['sample_idx'], res)
    return [unique[k] for k in sorted(unique)]


@METRICS.register_module()
class RobustAccuracy(BaseMetric):
    """Accuracy on clean images and under each attack of :class:`RobustTestLoop`.

    Reads the per-sample ``robust_correct`` (clean and each attack) and
    ``attack_seconds`` that the loop stores in every data sample, and reports
    in percent:

    - ``robust/clean``: clean top-1 accuracy;
    - ``robust/<attack>``: accuracy under each attack (a sample misclassified
      clean counts as broken: it is not attacked);
    - ``robust/worst_case``: samples that survive every attack (per-sample
      worst case, the robust accuracy that counts);
    - ``robust/time_s/<attack>``: seconds spent in the attack, summed over
      processes;
    - ``robust/precision/<attack>``: the precision the attack ran in
      ('fp32', 'fp16', 'bf16'; 'fp16+fp32' when its survivors were attacked
      again in fp32 after an overflow; several joined by '/' when batches
      differ), whatever it was, the decisions are fp32;
    - ``robust/num_samples``: number of evaluated samples.

    Results are identified by ``sample_idx``, so distributed runs give the
    same numbers as one process (repeats that pad ranks are dropped).

    Args:
        collect_device (str): Device for collecting results across ranks,
            ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Prefix of the metric names.
            Defaults to ``'robust'``.

    Example:
        >>> test_cfg = dict(type='RobustTestLoop',
        ...                 attacks=[dict(type='PGD', eps=8, steps=20)])
        >>> test_evaluator = dict(type='RobustAccuracy')
    """

    default_prefix = 'robust'
    # results carry sample_idx: RobustTestLoop's padded batches are exact
    dedup_by_sample_idx = True

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for ds in data_samples:
            if 'robust_correct' not in ds:
                raise KeyError(
                    'RobustAccuracy needs the per-sample results '
                    "of test_cfg = dict(type='RobustTestLoop', ...)"
                )
            self.results.append(
                dict(
                    sample_idx=int(ds['sample_idx']),
                    correct=dict(ds['robust_correct']),
                    seconds=dict(ds['attack_seconds']),
                    precision=dict(ds.get('attack_precision') or {}),
                )
            )

    def compute_metrics(self, results: List[dict]) -> dict:
        results = dedup_by_sample_idx(results)
        names = list(results[0]['correct'])
        n = len(results)
        metrics = {name: 100.0 * sum(r['correct'][name] for r in results) / n for name in names}
        metrics['worst_case'] = 100.0 * sum(all(r['correct'].values()) for r in results) / n
        for name in names[1:]:
            metrics[f'time_s/{name}'] = sum(r['seconds'][name] for r in results)
        for name in dict.fromkeys(k for r in results for k in r.get('precision', {})):
            metrics[f'precision/{name}'] = '/'.join(
                sorted({r['precision'][name] for r in results if name in r.get('precision', {})})
            )
        metrics['num_samples'] = n
        return metrics
