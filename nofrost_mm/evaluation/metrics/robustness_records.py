"""Per-sample robustness records for the robustness report."""

from typing import List, Optional, Sequence

from mmpretrain.registry import METRICS

from .robust_accuracy import RobustAccuracy, dedup_by_sample_idx


@METRICS.register_module()
class RobustnessRecords(RobustAccuracy):
    """:class:`RobustAccuracy` that also keeps every sample's record.

    Used by :class:`RobustnessReportLoop`: besides the accuracies of
    :class:`RobustAccuracy`, each record holds the sample's clean logit
    margin and the L1 norm of its input gradient (``margin``, ``grad_l1``,
    when the loop measured them). After evaluation the records of all
    processes, one per sample and sorted by ``sample_idx``, are in
    ``self.records`` on rank 0 (the report is written there).

    Args:
        worst_case_over (Sequence[str], optional): Result names the
            ``worst_case`` accuracy is taken over (e.g. only the attacks at
            the report's eps, not those of the eps sweep). None means every
            attack. Defaults to None.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Prefix of the metric names.
            Defaults to ``'robust'``.

    Example:
        >>> test_evaluator = dict(type='RobustnessRecords',
        ...                       worst_case_over=['PGD-20', 'AutoAttack'])
    """

    def __init__(
        self,
        worst_case_over: Optional[Sequence[str]] = None,
        collect_device: str = 'cpu',
        prefix: Optional[str] = None,
    ):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.worst_case_over = None if worst_case_over is None else list(worst_case_over)
        self.records: List[dict] = []

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        super().process(data_batch, data_samples)
        for res, ds in zip(self.results[-len(data_samples) :], data_samples):
            for key in ('margin', 'grad_l1'):
                if key in ds:
                    res[key] = float(ds[key])

    def compute_metrics(self, results: List[dict]) -> dict:
        self.records = dedup_by_sample_idx(results)
        metrics = super().compute_metrics(self.records)
        if self.worst_case_over is not None:
            names = ['clean'] + self.worst_case_over
            metrics['worst_case'] = (
                100.0
                * sum(all(r['correct'][k] for k in names) for r in self.records)
                / len(self.records)
            )
        return metrics
