"""The paper's distribution-shift table: ImageNet, -C (mCE), -R, -A, -Sketch.

Used by ``tools/analysis_tools/distribution_shift_table.py``: each benchmark is
the model's own config with the test set (and evaluator, and hooks) of a
``configs/_base_/datasets`` file, tested by the config's runner; the numbers
of every model and benchmark go to one Markdown table, one JSON file and one
bar plot.
"""

import copy
import json
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from .robust_test_config import robust_test_cfg


@dataclass(frozen=True)
class Benchmark:
    """One column group of the table.

    Args:
        name (str): Key on the command line (``imagenet-r``).
        title (str): Column title.
        dataset_config (str, optional): File in ``configs/_base_/datasets``
            with its ``test_dataloader``/``test_evaluator``; None: the model
            config's own test set.
        columns (tuple): ``(column, metric key)`` pairs of the clean run.
        default_root (str, optional): Data root when none is given; None:
            the model config's own (its test set, whatever its type).
    """

    name: str
    title: str
    dataset_config: Optional[str]
    columns: Tuple[Tuple[str, str], ...]
    default_root: Optional[str]


BENCHMARKS = {
    b.name: b
    for b in (
        # the model config's own test set, where its config puts it (an ImageNet
        # config's data/imagenet; a test set without a root, as the bundled digits)
        Benchmark('imagenet', 'ImageNet', None, (('clean', 'accuracy/top1'),), None),
        Benchmark(
            'imagenet-c',
            'ImageNet-C',
            'imagenet-c_bs64.py',
            (('mCE', 'corruption/mCE'), ('accuracy', 'corruption/mean_accuracy')),
            'data/imagenet-c',
        ),
        Benchmark(
            'imagenet-r',
            'ImageNet-R',
            'imagenet-r_bs64.py',
            (('clean', 'accuracy/top1'),),
            'data/imagenet-r',
        ),
        Benchmark(
            'imagenet-a',
            'ImageNet-A',
            'imagenet-a_bs64.py',
            (('clean', 'accuracy/top1'),),
            'data/imagenet-a',
        ),
        Benchmark(
            'imagenet-sketch',
            'ImageNet-Sketch',
            'imagenet-sketch_bs64.py',
            (('clean', 'accuracy/top1'),),
            'data/imagenet-sketch/sketch',
        ),
    )
}
# lower is better
LOWER_IS_BETTER = ('mCE',)


def parse_data_roots(
    items: Sequence[str], benchmarks: Sequence[str], option: str = '--data-root'
) -> Dict[str, Optional[str]]:
    """``NAME=PATH`` items -> {benchmark: path} for every benchmark.

    Benchmarks without an item get their default data root (``--data-root``;
    None for the model config's own) or None (any other option). Raises
    ValueError naming a bad item or an unknown benchmark.
    """
    paths = {}
    for item in items or ():
        name, sep, path = item.partition('=')
        if not sep or not path:
            raise ValueError(
                f'{option} {item!r}: expected NAME=PATH, e.g. imagenet-r=/datasets/imagenet-r'
            )
        if name not in BENCHMARKS:
            raise ValueError(
                f'{option} {item!r}: unknown benchmark {name!r}; one of {list(BENCHMARKS)}'
            )
        paths[name] = path
    default = option == '--data-root'
    return {b: paths.get(b, BENCHMARKS[b].default_root if default else None) for b in benchmarks}


def benchmark_cfg(
    model_cfg,
    benchmark: Benchmark,
    data_root: Optional[str],
    dataset_cfg=None,
    attacks: Optional[list] = None,
    num_samples: Optional[int] = None,
    batch_size: Optional[int] = None,
    num_workers: Optional[int] = None,
):
    """The model's config tested on a benchmark.

    The test dataloader and evaluator come from ``dataset_cfg`` (a config
    of ``configs/_base_/datasets``), or stay the model's for ImageNet; its
    ``custom_hooks`` (``ClassSubsetHook``) are added to the model's; the
    data root is set; the model, its data preprocessor and everything else
    stay the model's. With ``attacks`` the test runs in
    :class:`RobustTestLoop` with :class:`RobustAccuracy` (clean accuracy,
    each attack and the per-sample worst case), else in the plain test loop.

    Args:
        model_cfg (Config): The model's config (not modified).
        benchmark (Benchmark): The benchmark.
        data_root (str, optional): Its data root (for ImageNet: the root
            holding ``val/``, as the model config's test set); None keeps the
            model config's.
        dataset_cfg (Config, optional): The benchmark's dataset config.
        attacks (list, optional): Attack configs of ``RobustTestLoop``.
        num_samples (int, optional): Seeded test subset of the robust run.
        batch_size (int, optional): Test batch size.
        num_workers (int, optional): Test dataloader workers.

    Returns:
        Config: The config to build the runner from.
    """
    cfg = copy.deepcopy(model_cfg)
    if dataset_cfg is not None:
        cfg.test_dataloader = copy.deepcopy(dataset_cfg.test_dataloader)
        cfg.test_evaluator = copy.deepcopy(dataset_cfg.test_evaluator)
        hooks = list(cfg.get('custom_hooks', None) or [])
        types = {h.get('type') for h in hooks}
        hooks += [
            h for h in dataset_cfg.get('custom_hooks', None) or [] if h.get('type') not in types
        ]
        cfg.custom_hooks = hooks
    if cfg.get('test_dataloader', None) is None:
        raise ValueError(f'{benchmark.title}: the model config has no test_dataloader')
    if data_root is not None:
        cfg.test_dataloader.dataset.data_root = data_root
    if batch_size is not None:
        cfg.test_dataloader.batch_size = batch_size
    if num_workers is not None:
        cfg.test_dataloader.num_workers = num_workers
        if num_workers == 0:
            cfg.test_dataloader.pop('persistent_workers', None)
    cfg.pop('test_attacks', None)
    cfg.test_cfg = dict()
    if attacks:
        # RobustAccuracy replaces the benchmark's metric (it also reports
        # clean accuracy); the one translation into a RobustTestLoop
        cfg.test_evaluator = dict(type='RobustAccuracy')
        cfg.test_attacks = list(attacks)
        robust_test_cfg(cfg, num_samples)
    return cfg


def check_head_for_benchmark(model_cfg, dataset, benchmark: Benchmark) -> None:
    """Fail before any model is built when a class-subset benchmark meets a
    head that does not have the 1000 ImageNet outputs."""
    from nofrost_mm.datasets.wnid_folder_dataset import check_head_width

    subset = dataset.metainfo.get('class_subset')
    head = (model_cfg.get('model', None) or {}).get('head', None) or {}
    if subset is not None:
        check_head_width(
            head.get('num_classes'),
            len(subset),
            dataset=f'{benchmark.title} ({type(dataset).__name__})',
        )


def result_columns(
    benchmark: Benchmark, metrics: dict, attack_names: Sequence[str] = ()
) -> Dict[str, Optional[float]]:
    """Pick the table's numbers of one benchmark run from its metrics.

    Clean runs give the benchmark's columns (None where a metric is
    missing, e.g. mCE without all 75 ImageNet-C folders); robust runs
    (``robust/...`` keys) give the clean accuracy of the attacked samples
    (``attacked_clean``: a ``--num-samples`` subset), each attack and
    ``worst_case``.
    """
    if any(k.startswith('robust/') for k in metrics):
        # clean accuracy of the attacked (sub)set, next to its robust numbers
        out = {'attacked_clean': metrics.get('robust/clean')}
        out.update({name: metrics.get(f'robust/{name}') for name in attack_names})
        out['worst_case'] = metrics.get('robust/worst_case')
        out['robust_num_samples'] = metrics.get('robust/num_samples')
        return out
    return {col: metrics.get(key) for col, key in benchmark.columns}


def table_columns(results: List[dict], benchmarks: Sequence[str]) -> List[Tuple[str, str]]:
    """``(benchmark, column)`` pairs present in any model's results, in order."""
    cols = []
    for b in benchmarks:
        for r in results:
            for col in r['results'].get(b, {}):
                if col != 'robust_num_samples' and (b, col) not in cols:
                    cols.append((b, col))
    return cols


def column_title(benchmark: str, column: str, sep: str = ' ') -> str:
    """Title of a table column (``sep`` between benchmark and column)."""
    title = BENCHMARKS[benchmark].title
    if column == 'clean':
        return title
    if column == 'attacked_clean':
        return f'{title}{sep}clean (attacked samples)'
    if column in LOWER_IS_BETTER:
        return f'{title}{sep}{column} (lower is better)'
    return f"{title}{sep}{column.replace('_', ' ')}"


def write_markdown(
    path: str, results: List[dict], benchmarks: Sequence[str], settings: dict
) -> None:
    """The table (one row per model, numbers in %), with its settings."""
    cols = table_columns(results, benchmarks)
    lines = [
        '# Distribution-shift robustness',
        '',
        '| model | ' + ' | '.join(column_title(b, c) + ' (%)' for b, c in cols) + ' |',
        '| --- |' + ' --- |' * len(cols),
    ]
    for r in results:
        cells = []
        for b, c in cols:
            v = r['results'].get(b, {}).get(c)
            cells.append('n/a' if v is None else f'{v:.2f}')
        lines.append(f"| {r['name']} | " + ' | '.join(cells) + ' |')
    lines += [
        '',
        'Accuracy is top-1 in %; ImageNet-R and ImageNet-A are scored on the '
        "200 logits of their classes (the official evaluation), ImageNet-C's "
        'mCE is normalised by AlexNet (lower is better); n/a: not measured '
        '(e.g. mCE without all 15 corruptions x 5 severities).',
        '',
        '| setting | value |',
        '| --- | --- |',
    ]
    for key, value in settings.items():
        lines.append(f'| {key} | {value} |')
    lines += ['', '| model | config | checkpoint |', '| --- | --- | --- |']
    lines += [f"| {r['name']} | {r['config']} | {r['checkpoint']} |" for r in results]
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def write_json(path: str, results: List[dict], settings: dict) -> None:
    with open(path, 'w') as f:
        json.dump(dict(settings=settings, models=results), f, indent=2)


def plot_bars(path: str, results: List[dict], benchmarks: Sequence[str]) -> None:
    """Grouped bars: one group per column, one bar per model (Agg backend)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    cols = table_columns(results, benchmarks)
    width = 0.8 / max(len(results), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(cols) + 2), 4))
    x = np.arange(len(cols))
    for i, r in enumerate(results):
        values = [r['results'].get(b, {}).get(c) for b, c in cols]
        heights = [np.nan if v is None else v for v in values]
        bars = ax.bar(x + (i - (len(results) - 1) / 2) * width, heights, width, label=r['name'])
        for bar, v in zip(bars, values):
            if v is not None:
                ax.annotate(
                    f'{v:.1f}',
                    (bar.get_x() + bar.get_width() / 2, v),
                    ha='center',
                    va='bottom',
                    fontsize=7,
                )
    ax.set_xticks(x)
    ax.set_xticklabels([column_title(b, c, '\n').replace(' (', '\n(') for b, c in cols], fontsize=8)
    ax.set_ylabel('%')
    ax.set_title('Distribution-shift robustness (accuracy; mCE: lower is better)')
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def output_paths(out_dir: str) -> Dict[str, str]:
    return dict(
        markdown=osp.join(out_dir, 'distribution_shift.md'),
        json=osp.join(out_dir, 'distribution_shift.json'),
        plot=osp.join(out_dir, 'distribution_shift.png'),
    )
