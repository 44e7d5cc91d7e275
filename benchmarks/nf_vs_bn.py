"""Training-step cost of NF-ResNet-50 relative to BN ResNet-50.

Both classifiers (mmpretrain ``ResNet`` depth 50 with BN, and
``configs/_base_/models/nf-resnet50.py``) run forward + cross-entropy +
backward on the same random batch. Steps alternate between the two models
(BN, NF, BN, NF, ...) so that machine load hits both alike; the ratio of
median times is printed. Target: NF / BN <= 1.05 (the standardization of the
weights should cost less than the BatchNorms it replaces).

Usage:
    python benchmarks/nf_vs_bn.py [--batch-size 8] [--img-size 224]
        [--iters 10] [--warmup 2] [--device cpu|cuda] [--threads N]
"""

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parents[1]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--iters', type=int, default=10, help='timed steps per model')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps per model first')
    parser.add_argument('--device', default=None, help='cpu or cuda (default: cuda if available)')
    parser.add_argument(
        '--threads', type=int, default=None, help='torch CPU threads (default: torch decides)'
    )
    parser.add_argument(
        '--recipe-drops',
        action='store_true',
        help="keep the NoFrost recipe's drop path 0.1 / dropout 0.25 in the "
        'NF model (the BN baseline has neither)',
    )
    args = parser.parse_args()
    if min(args.batch_size, args.img_size, args.iters) < 1:
        parser.error('--batch-size, --img-size and --iters must be >= 1')
    return args


def build_models(recipe_drops):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import nofrost_mm  # noqa: F401

    init_default_scope('mmpretrain')
    head = dict(type='LinearClsHead', num_classes=1000, in_channels=2048)
    bn = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='ResNet', depth=50),
            neck=dict(type='GlobalAveragePooling'),
            head=head,
        )
    )
    cfg = Config.fromfile(REPO_ROOT / 'configs/_base_/models/nf-resnet50.py')
    if not recipe_drops:
        cfg.model.backbone.drop_path_rate = 0.0
        cfg.model.head.dropout_rate = 0.0
    nf = MODELS.build(cfg.model)
    return bn, nf


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    torch.manual_seed(0)
    models = dict(zip(('BN ResNet-50', 'NF-ResNet-50'), build_models(args.recipe_drops)))
    x = torch.randn(args.batch_size, 3, args.img_size, args.img_size, device=device)
    y = torch.randint(0, 1000, (args.batch_size,), device=device)
    for model in models.values():
        model.to(device).train()

    def step(model):
        model.zero_grad(set_to_none=True)
        sync()
        start, cpu_start = time.perf_counter(), time.process_time()
        F.cross_entropy(model(x, mode='tensor'), y).backward()
        sync()
        return (time.perf_counter() - start, time.process_time() - cpu_start)

    times = {name: [] for name in models}
    cpu_times = {name: [] for name in models}
    for i in range(args.warmup + args.iters):
        for name, model in models.items():  # interleaved: same load for both
            elapsed, cpu = step(model)
            if i >= args.warmup:
                times[name].append(elapsed)
                cpu_times[name].append(cpu)

    print(
        f'device {device}, threads {torch.get_num_threads()}, batch '
        f'{args.batch_size}x3x{args.img_size}x{args.img_size}, '
        f'{args.iters} interleaved steps each (after {args.warmup} warm-up)'
    )
    for name, values in times.items():
        print(
            f'{name}: median {statistics.median(values) * 1e3:.1f} ms, '
            f'min {min(values) * 1e3:.1f} ms, max {max(values) * 1e3:.1f} '
            'ms per forward+backward'
        )
    medians = [statistics.median(v) for v in times.values()]
    pairs = [nf / bn for bn, nf in zip(*times.values())]
    print(
        f'ratio NF / BN: {medians[1] / medians[0]:.3f} (median of times), '
        f'{statistics.median(pairs):.3f} (median of per-step ratios); '
        'target <= 1.05'
    )
    if device.type == 'cpu':
        # CPU time of this process: less sensitive to other processes
        # competing for the cores than wall time (not to cache contention)
        cpu_medians = [statistics.median(v) for v in cpu_times.values()]
        print(
            f'CPU-time ratio NF / BN: {cpu_medians[1] / cpu_medians[0]:.3f} '
            f'(medians {cpu_medians[0]:.2f} s, {cpu_medians[1]:.2f} s)'
        )


if __name__ == '__main__':
    main()
