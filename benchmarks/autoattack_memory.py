"""Peak memory of AutoAttack's targeted members against the number of survivors.

APGD-T and FAB-T attack every survivor against 9 target classes, so one pass
over all their rows holds survivors x 9 images' activations and input
gradients, and FAB's projection about ten tensors of (2 x rows, C x H x W).
``target_batch`` (AutoAttack's one memory setting; 'auto' by default) cuts
the rows into passes of at most that many images, and FAB's projection into
slices of as many rows. This script runs each member on 8, 64 and 256
survivors with a chunk and without one (``target_batch=None``), each case in
a fresh process, and prints the peak memory the attack added: on a CPU the
growth of the peak resident set size over the RSS before the attack (Linux:
the peak is reset through ``/proc/self/clear_refs``), on CUDA the growth of
the peak allocated memory. With a chunk the peak stays that of one pass
whatever the number of survivors; without one it grows with survivors x 9.
Each row also says how many samples were broken, and the script checks that
the chunked and unchunked runs break the same samples (which the attack's
design promises: the numbers do not depend on the chunk).

Memory does not depend on the number of iterations (every pass keeps the
same tensors), so the members run ``--steps`` (default 1) iterations.

Usage:
    python benchmarks/autoattack_memory.py [--img-size 64] [--chunk 64]
        [--survivors 8 64 256] [--device cpu|cuda] [--depth 18 --width 8]
        [--no-unchunked-above N]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MEMBERS = ('apgd-t', 'fab-t')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--img-size', type=int, default=64)
    parser.add_argument('--depth', type=int, default=18, help='NF-ResNet depth')
    parser.add_argument('--width', type=int, default=8, help='NF-ResNet stem and base channels')
    parser.add_argument(
        '--chunk', type=int, default=64, help='target_batch of the chunked runs (rows per pass)'
    )
    parser.add_argument('--survivors', type=int, nargs='+', default=[8, 64, 256])
    parser.add_argument('--members', nargs='+', default=list(MEMBERS), choices=MEMBERS)
    parser.add_argument('--steps', type=int, default=1)
    parser.add_argument(
        '--eps', type=float, default=2.0, help='eps /255 (small: some samples stay robust)'
    )
    parser.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument(
        '--no-unchunked-above',
        type=int,
        default=None,
        help='skip unchunked runs above this many survivors '
        '(they need survivors x 9 rows of memory)',
    )
    parser.add_argument('--json', default=None, help='also write the rows here')
    parser.add_argument('--case', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.img_size, args.chunk, args.steps, *args.survivors) < 1:
        parser.error('--img-size, --chunk, --steps and --survivors must be >= 1')
    return args


def _current_rss() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def _reset_peak_rss() -> bool:
    """Reset VmHWM (Linux >= 4.0); False where it cannot be reset."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def _peak_rss() -> int:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _malloc_trim():
    try:
        import ctypes

        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def build_model(depth: int, width: int, device: str):
    """An untrained ImageNet-style NF-ResNet (10 classes) mapping [0, 1] images
    to logits, eval mode, frozen."""
    import torch
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import nofrost_mm  # noqa: F401

    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    channels = {18: 8, 34: 8, 50: 32}.get(depth, 8) * width
    clf = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(
                type='NFResNet',
                depth=depth,
                stem_channels=width,
                base_channels=width,
                out_indices=(3,),
            ),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=channels),
        )
    )

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.clf = clf

        def forward(self, x):
            return self.clf(x, mode='tensor')

    return Logits().to(device).eval().requires_grad_(False)


def run_case(case: dict) -> dict:
    """One member on ``survivors`` images in this process; its peak memory."""
    import torch

    from nofrost_mm.attacks import APGDAttack, FABAttack
    from nofrost_mm.utils.sample_random import sample_keys

    if case['threads']:
        torch.set_num_threads(case['threads'])
    device = case['device']
    model = build_model(case['depth'], case['width'], device)
    gen = torch.Generator().manual_seed(1)
    n, size = case['survivors'], case['img_size']
    images = torch.rand(n, 3, size, size, generator=gen).to(device)
    with torch.no_grad():
        logits = torch.cat([model(images[i : i + 64]) for i in range(0, n, 64)])
    labels = logits.argmax(1)  # every sample classified correctly: all attacked
    keys = sample_keys(0, torch.arange(n), device)
    kw = dict(eps=case['eps'], steps=case['steps'], target_batch=case['target_batch'])
    attack = (
        APGDAttack(loss='dlr-targeted', **kw) if case['member'] == 'apgd-t' else FABAttack(**kw)
    )
    # the allocator's and the conv library's first-use costs before measuring
    attack.perturb(model, images[:2], labels[:2], keys[:2], logits[:2])
    _malloc_trim()
    if device == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        case['peak_reset'] = _reset_peak_rss()
        base = _current_rss()
    start = time.perf_counter()
    _, broken = attack.perturb(model, images, labels, keys, logits)
    if device == 'cuda':
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _peak_rss() - base
    return dict(
        case,
        peak_mib=round(peak / 2**20, 1),
        seconds=round(time.perf_counter() - start, 2),
        rows=9 * n,
        broken=int(broken.sum()),
        broken_mask=''.join('1' if b else '0' for b in broken.tolist()),
    )


def _spawn(case: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, '--case', json.dumps(case)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    if out.returncode:
        return dict(case, error=out.stderr.strip().splitlines()[-1:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    args = parse_args(argv)
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return 0
    rows = []
    print(
        f'NF-ResNet-{args.depth} width {args.width}, {args.img_size} px, '
        f'{args.device}, {args.steps} step(s), chunk target_batch={args.chunk}; '
        f'peak memory added by the attack (CPU: RSS, CUDA: allocated)',
        flush=True,
    )
    print('| member | survivors | rows | target_batch | peak MiB | s | broken |')
    print('| --- | --- | --- | --- | --- | --- | --- |', flush=True)
    for member in args.members:
        for n in args.survivors:
            for tb in (args.chunk, None):
                if (
                    tb is None
                    and args.no_unchunked_above is not None
                    and n > args.no_unchunked_above
                ):
                    continue
                case = dict(
                    member=member,
                    survivors=n,
                    target_batch=tb,
                    img_size=args.img_size,
                    depth=args.depth,
                    width=args.width,
                    steps=args.steps,
                    eps=args.eps,
                    device=args.device,
                    threads=args.threads,
                )
                r = _spawn(case)
                rows.append(r)
                if 'error' in r:
                    print(
                        f'| {member} | {n} | {9 * n} | {tb} | error: {r["error"]} | | |', flush=True
                    )
                    continue
                print(
                    f'| {member} | {n} | {r["rows"]} | {tb} | {r["peak_mib"]} | '
                    f'{r["seconds"]} | {r["broken"]} |',
                    flush=True,
                )
    # the chunk changes no result
    same = True
    for member in args.members:
        for n in args.survivors:
            pair = [
                r
                for r in rows
                if r['member'] == member and r['survivors'] == n and 'error' not in r
            ]
            if len(pair) == 2 and pair[0]['broken_mask'] != pair[1]['broken_mask']:
                same = False
                print(f'DIFFERENT: {member} on {n} survivors breaks other samples with the chunk')
    chunked = [r['peak_mib'] for r in rows if r.get('target_batch') and 'error' not in r]
    from nofrost_mm.utils.machine import cpu_name

    summary = dict(
        date=time.strftime('%Y-%m-%d'),
        cpu=f'{cpu_name()}, {os.cpu_count()} cores',
        chunked_peak_range_mib=[min(chunked), max(chunked)] if chunked else None,
        same_broken_samples=same,
    )
    print(json.dumps(summary))
    if args.json:
        Path(args.json).write_text(json.dumps(dict(summary=summary, rows=rows), indent=1))
    return 0 if same and not any('error' in r for r in rows) else 1


if __name__ == '__main__':
    sys.exit(main())
