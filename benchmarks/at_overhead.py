"""Cost of PGD adversarial training, measured side by side on one model and batch.

Prints three ratios (issue 5):

1. PGD-K generation by PGDDataPreprocessor / torchattacks.PGD with the same
   eps, steps and step size (target <= 1.0);
2. one AT iteration (adv_loss_weight 0.5, separate passes) / one standard
   iteration (target <= 1.1 * (2K + 6) / 3: K attack forward+input-backward
   passes plus two training passes, against one, counting a backward as
   twice a forward);
3. peak memory of an AT iteration / a standard one (CUDA: peak allocated
   tensor memory; CPU: growth of the process's peak RSS, each in a fresh
   process).

Both sides use the same weights and batch; timings alternate between the
two sides round by round and the median per-round ratio is reported, so a
busy machine slows both alike.

Example:
    python benchmarks/at_overhead.py                 # small BN ResNet, CPU
    python benchmarks/at_overhead.py --config configs/nofrost/resnet50_8xb32_in1k_pgdat.py \
        --img-size 224 --batch-size 32 --device cuda
"""
import argparse
import copy
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = 'configs/demo/resnet18-w16_1xb64_digits_pgdat.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='an AT config (PGDDataPreprocessor + AdvImageClassifier)')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--img-size', type=int, default=32)
    parser.add_argument('--steps', type=int, default=10, help='PGD steps K')
    parser.add_argument('--eps', type=float, default=8., help='eps in pixel units of 255')
    parser.add_argument('--rounds', type=int, default=5, help='timed rounds per ratio')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        choices=['cpu', 'cuda'])
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--memory-child', choices=['standard', 'at'],
                        help=argparse.SUPPRESS)  # internal: one CPU memory probe
    args = parser.parse_args(argv)
    for key in ('batch_size', 'img_size', 'steps', 'rounds'):
        if getattr(args, key) < 1:
            parser.error(f'--{key.replace("_", "-")} must be >= 1')
    if args.eps <= 0:
        parser.error('--eps must be > 0')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device here')
    return args


def build(args):
    """The AT model, a standard twin with the same weights, a batch, optim wrappers."""
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import OptimWrapper
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample

    import nofrost_mm  # noqa: F401  (registers the plug-in)

    init_default_scope('mmpretrain')
    cfg = Config.fromfile(REPO_ROOT / args.config)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg['data_preprocessor'] = copy.deepcopy(cfg.data_preprocessor)
    if model_cfg['data_preprocessor'].get('type') != 'PGDDataPreprocessor':
        sys.exit(f'{args.config}: needs data_preprocessor.type=PGDDataPreprocessor')
    pre = model_cfg['data_preprocessor']
    pre.update(attack=dict(type='PGDAttack', eps=args.eps, steps=args.steps),
               adv_loss_weight=0.5, adv_forward='separate')
    model_cfg['type'] = 'AdvImageClassifier'
    std_cfg = copy.deepcopy(model_cfg)
    std_cfg['type'] = 'ImageClassifier'
    std_cfg['data_preprocessor'] = {
        k: v for k, v in pre.items()
        if k in ('mean', 'std', 'to_rgb', 'num_classes', 'to_onehot')}
    std_cfg['data_preprocessor']['type'] = 'ClsDataPreprocessor'

    torch.manual_seed(args.seed)
    at_model = MODELS.build(model_cfg).to(args.device)
    std_model = MODELS.build(std_cfg).to(args.device)
    std_model.load_state_dict(at_model.state_dict())
    at_model.data_preprocessor.set_classifier(at_model)  # AdversarialTrainingHook's job

    num_classes = at_model.head.num_classes
    gen = torch.Generator().manual_seed(args.seed)
    batch = pseudo_collate([
        dict(inputs=torch.randint(0, 256, (3, args.img_size, args.img_size),
                                  dtype=torch.uint8, generator=gen),
             data_samples=DataSample().set_gt_label(
                 int(torch.randint(num_classes, (1, ), generator=gen))))
        for _ in range(args.batch_size)])

    def optim(model):
        return OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9))

    return at_model, std_model, batch, optim(at_model), optim(std_model)


def _sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def timed(fn, device):
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def side_by_side(fn_a, fn_b, rounds, device):
    """Median over rounds of time(a) / time(b), a and b alternating."""
    fn_a(), fn_b()  # warm-up
    ratios, times_a, times_b = [], [], []
    for i in range(rounds):
        if i % 2:
            tb, ta = timed(fn_b, device), timed(fn_a, device)
        else:
            ta, tb = timed(fn_a, device), timed(fn_b, device)
        ratios.append(ta / tb)
        times_a.append(ta)
        times_b.append(tb)
    return statistics.median(ratios), statistics.median(times_a), statistics.median(times_b)


def generation_ratio(args, at_model, batch):
    import torchattacks

    from nofrost_mm.attacks import NormalizedClassifier
    from mmpretrain.models.utils.data_preprocessor import ClsDataPreprocessor

    pre = at_model.data_preprocessor
    data = ClsDataPreprocessor.forward(pre, copy.deepcopy(batch), True)
    inputs, labels = data['inputs'], pre.attack_targets(data['data_samples'])
    images = pre._to_unit_range(inputs)
    mean = pre.mean.flatten() if pre._enable_normalize else None
    std = pre.std.flatten() if pre._enable_normalize else None
    net = NormalizedClassifier(at_model, mean, std)
    reference = torchattacks.PGD(net, eps=args.eps / 255, steps=args.steps,
                                 alpha=pre.attack.get_step_size() / 255)
    at_model.train()  # as in training: the attack switches to eval and back
    ratio, ours, theirs = side_by_side(
        lambda: pre.attack_inputs(inputs, labels),
        lambda: reference(images, labels), args.rounds, args.device)
    return ratio, ours, theirs


def iteration_ratio(args, at_model, std_model, batch, at_optim, std_optim):
    at_model.train()
    std_model.train()
    return side_by_side(
        lambda: at_model.train_step(copy.deepcopy(batch), at_optim),
        lambda: std_model.train_step(copy.deepcopy(batch), std_optim),
        args.rounds, args.device)


def cuda_peak(model, batch, optim):
    model.train_step(copy.deepcopy(batch), optim)  # optimizer state allocated
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    model.train_step(copy.deepcopy(batch), optim)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def _rss_bytes():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def cpu_memory_child(args):
    """Runs in a fresh process: growth of peak RSS over two iterations of one kind."""
    at_model, std_model, batch, at_optim, std_optim = build(args)
    model, optim = (at_model, at_optim) if args.memory_child == 'at' else (std_model, std_optim)
    model.train()
    base = _rss_bytes()
    for _ in range(2):
        model.train_step(copy.deepcopy(batch), optim)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(json.dumps(dict(peak_growth=peak - base)))


def memory_ratio(args, at_model, std_model, batch, at_optim, std_optim):
    if args.device == 'cuda':
        at, std = cuda_peak(at_model, batch, at_optim), cuda_peak(std_model, batch, std_optim)
        return at / std, at, std
    result = {}
    for kind in ('standard', 'at'):
        cmd = [sys.executable, __file__, '--memory-child', kind] + [
            a for a in sys.argv[1:] if a != '--memory-child']
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO_ROOT)
        result[kind] = json.loads(out.stdout.strip().splitlines()[-1])['peak_growth']
    return result['at'] / result['standard'], result['at'], result['standard']


def main(argv=None):
    args = parse_args(argv)
    if args.memory_child:
        cpu_memory_child(args)
        return
    at_model, std_model, batch, at_optim, std_optim = build(args)
    k = args.steps
    print(f'config {args.config}, device {args.device}, batch {args.batch_size}x3x'
          f'{args.img_size}x{args.img_size}, PGD-{k} eps {args.eps}/255, '
          f'torch threads {torch.get_num_threads()}')

    ratio, ours, theirs = generation_ratio(args, at_model, batch)
    print(f'1. PGD-{k} generation, PGDDataPreprocessor / torchattacks.PGD: {ratio:.3f} '
          f'(median {ours * 1e3:.1f} ms vs {theirs * 1e3:.1f} ms; target <= 1.0)')

    ratio, at, std = iteration_ratio(args, at_model, std_model, batch, at_optim, std_optim)
    target = 1.1 * (2 * k + 6) / 3
    print(f'2. AT iteration / standard iteration: {ratio:.2f} (median {at * 1e3:.1f} ms vs '
          f'{std * 1e3:.1f} ms; target <= 1.1 x (2K+6)/3 = {target:.2f})')

    ratio, at, std = memory_ratio(args, at_model, std_model, batch, at_optim, std_optim)
    what = 'peak allocated' if args.device == 'cuda' else 'peak RSS growth'
    print(f'3. peak memory, AT / standard iteration: {ratio:.2f} ({what} '
          f'{at / 2**20:.1f} MiB vs {std / 2**20:.1f} MiB)')


if __name__ == '__main__':
    main()
