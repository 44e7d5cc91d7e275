"""Early-exit PGD for evaluation against torchattacks.PGD, side by side.

On a trained checkpoint and the first ``--num-samples`` images of its test
split, runs ``PGDAttack(early_exit=True)`` (broken samples leave the batch at
the iterate that broke them) and ``torchattacks.PGD`` with the same eps,
steps and step size on the same ``NormalizedClassifier``, alternating round
by round so a busy machine slows both alike. Prints both robust accuracies
(early exit may only be lower or equal: it keeps the best iterate) and the
median per-round time ratio early-exit / torchattacks (target <= 0.7 on an
adversarially trained model).

Example:
    python benchmarks/early_exit_pgd.py configs/demo/resnet18-w16_1xb64_digits_pgdat.py \\
        work_dirs/demo/.../epoch_15.pth --eps 32 --steps 20
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
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--eps', type=float, default=32.0, help='pixel units of 255')
    parser.add_argument('--steps', type=int, default=20)
    parser.add_argument(
        '--step-size',
        type=float,
        default=None,
        help='pixel units of 255; default the official rule min(1.25 eps, eps + 4) / steps',
    )
    parser.add_argument('--num-samples', type=int, default=360)
    parser.add_argument('--batch-size', type=int, default=120)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    args = parser.parse_args(argv)
    for key in ('steps', 'num_samples', 'batch_size', 'rounds'):
        if getattr(args, key) < 1:
            parser.error(f'--{key.replace("_", "-")} must be >= 1')
    return args


def load(args):
    sys.path.insert(0, str(REPO_ROOT))
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint
    from mmpretrain.registry import DATASETS, MODELS

    import nofrost_mm  # noqa: F401
    from nofrost_mm.attacks import NormalizedClassifier

    cfg = Config.fromfile(args.config)
    # the Runner's merge: a top-level data_preprocessor fills the model's
    cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    model = MODELS.build(cfg.model).to(args.device).eval()
    load_checkpoint(model, args.checkpoint, map_location=args.device, logger='silent')
    for p in model.parameters():
        p.requires_grad_(False)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    n = min(args.num_samples, len(dataset))
    items = [dataset[i] for i in range(n)]
    images = torch.stack([it['inputs'] for it in items]).float().div(255).to(args.device)
    labels = torch.cat([it['data_samples'].gt_label for it in items]).to(args.device)
    pre = model.data_preprocessor
    net = NormalizedClassifier(
        model, pre.mean.flatten().tolist(), pre.std.flatten().tolist()
    ).eval()
    return net, images, labels


def main(argv=None):
    args = parse_args(argv)
    net, images, labels = load(args)
    import torchattacks

    from nofrost_mm.attacks import PGDAttack

    ours = PGDAttack(eps=args.eps, steps=args.steps, step_size=args.step_size, early_exit=True)
    alpha = ours.get_step_size()
    ref = torchattacks.PGD(
        net, eps=args.eps / 255, alpha=alpha / 255, steps=args.steps, random_start=True
    )

    def run(attack):
        correct, start = 0, time.perf_counter()
        for s in range(0, len(images), args.batch_size):
            x, y = images[s : s + args.batch_size], labels[s : s + args.batch_size]
            torch.manual_seed(s)
            adv = attack(net, x, y) if attack is ours else attack(x, y)
            with torch.no_grad():
                correct += int((net(adv).argmax(1) == y).sum())
        if images.is_cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start, 100.0 * correct / len(images)

    # the rows each step of the early-exit attack still carries: the time
    # ratio cannot fall below their mean share of the full batch
    rows = []
    counting = lambda x: (rows.append(len(x)), net(x))[1]  # noqa: E731
    for s in range(0, len(images), args.batch_size):
        torch.manual_seed(s)
        ours(counting, images[s : s + args.batch_size], labels[s : s + args.batch_size])
    active = sum(rows) / (len(images) * args.steps)

    run(ours)  # warm-up
    ratios, t_ours, t_ref = [], [], []
    for _ in range(args.rounds):
        a, acc_ours = run(ours)
        b, acc_ref = run(ref)
        t_ours.append(a)
        t_ref.append(b)
        ratios.append(a / b)
    with torch.no_grad():
        clean = 100.0 * float((net(images).argmax(1) == labels).float().mean())
    print(
        f'{len(images)} samples, eps {args.eps:g}/255, {args.steps} steps, '
        f'step {alpha:.3g}/255, {args.device}, {torch.get_num_threads()} threads'
    )
    print(
        f'clean {clean:.1f}%  robust: early-exit PGDAttack {acc_ours:.1f}%, '
        f'torchattacks.PGD {acc_ref:.1f}%'
    )
    print(
        f'median time: early-exit {statistics.median(t_ours):.2f} s, '
        f'torchattacks {statistics.median(t_ref):.2f} s'
    )
    ratio = statistics.median(ratios)
    print(
        f'mean share of the batch still attacked per step: {active:.3f} '
        '(the lower bound of the time ratio)'
    )
    print(
        f'early-exit / torchattacks.PGD time: {ratio:.3f} (target <= 0.7) '
        f"{'OK' if ratio <= 0.7 else 'ABOVE TARGET'}"
    )
    return dict(
        ratio=ratio,
        robust_early_exit=acc_ours,
        robust_torchattacks=acc_ref,
        clean=clean,
        active_share=active,
    )


if __name__ == '__main__':
    main()
