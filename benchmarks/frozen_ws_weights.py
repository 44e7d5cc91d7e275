"""Standardized weights computed once per attack, against once per forward.

Scaled WS convs (NF-ResNets) standardize their weight at every forward pass.
Inside ``attack_context`` the weights are fixed, so each conv computes it once
(``ScaledWSConv2d.freeze_derived_weights``). This script times the same work
on the same NF model with the cache (inside ``attack_context``) and without it
(eval mode and frozen parameters set by hand), alternating round by round so
a busy machine slows both alike, and prints the median ratio cached / plain
for: no-grad forward passes at a small batch (the pattern of Square's 5000
queries and of FAB's candidate checks), PGD-10 (forward + input gradient),
and torchattacks' Square with a reduced query budget. Outputs are checked to
be bitwise equal first.

Example:
    python benchmarks/frozen_ws_weights.py
    python benchmarks/frozen_ws_weights.py --config configs/demo/nf-resnet18-w16_1xb64_digits_pgdat.py --img-size 16
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=str(
        REPO_ROOT / 'configs/demo/nf-resnet18-w16_1xb64_digits_pgdat.py'))
    parser.add_argument('--img-size', type=int, default=16)
    parser.add_argument('--small-batch', type=int, default=32)
    parser.add_argument('--batch', type=int, default=100)
    parser.add_argument('--queries', type=int, default=200,
                        help='forward passes per round, and Square queries')
    parser.add_argument('--rounds', type=int, default=3)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    import torchattacks
    from mmengine.config import Config
    from mmpretrain.registry import MODELS

    import nofrost_mm  # noqa: F401
    from nofrost_mm.attacks import PGDAttack, attack_context
    from nofrost_mm.attacks.normalized_classifier import NormalizedClassifier

    torch.manual_seed(0)
    cfg = Config.fromfile(args.config)
    model = MODELS.build(cfg.model).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    net = NormalizedClassifier(model).eval()
    size = (3, args.img_size, args.img_size)
    small, big = torch.rand(args.small_batch, *size), torch.rand(args.batch, *size)
    with torch.no_grad():  # labels = own predictions: every sample starts robust
        small_y, big_y = net(small).argmax(1), net(big).argmax(1)
    with torch.no_grad():
        plain_out = net(small)
    with attack_context(model), torch.no_grad():
        assert torch.equal(net(small), plain_out), 'cache changed the outputs'

    pgd = PGDAttack(eps=32, steps=10)

    def forwards():
        with torch.no_grad():
            for _ in range(args.queries):
                net(small)

    def pgd10():
        pgd(net, big, big_y)

    def square():
        torchattacks.Square(net, eps=32 / 255, n_queries=args.queries,
                            seed=0)(small, small_y)

    rows = []
    for label, work in [(f'{args.queries} no-grad forwards, batch '
                         f'{args.small_batch}', forwards),
                        (f'PGD-10, batch {args.batch}', pgd10),
                        (f'Square, {args.queries} queries, batch '
                         f'{args.small_batch}', square)]:
        ratios, times = [], []
        work()  # warm-up
        for _ in range(args.rounds):
            start = time.perf_counter()
            work()
            plain = time.perf_counter() - start
            with attack_context(model):
                start = time.perf_counter()
                work()
                cached = time.perf_counter() - start
            ratios.append(cached / plain)
            times.append((cached, plain))
        cached, plain = map(statistics.median, zip(*times))
        rows.append((label, statistics.median(ratios), cached, plain))
    print(f'| work ({Path(args.config).name}, {args.img_size} px, '
          f'{torch.get_num_threads()} threads) | cached / plain | cached | plain |')
    print('| --- | --- | --- | --- |')
    for label, ratio, cached, plain in rows:
        print(f'| {label} | {ratio:.2f} | {cached:.2f} s | {plain:.2f} s |')


if __name__ == '__main__':
    main()
