"""Cost of PGD adversarial training, measured side by side on one model and batch.

Prints three ratios (issue 5):

1. PGD-K generation by PGDDataPreprocessor / torchattacks.PGD with the same
   eps, steps and step size (target <= 1.0);
2. one AT iteration (adv_loss_weight 0.5, separate passes) / one standard
   iteration (target <= 1.1 * (2K + 6) / 3: K attack forward+input-backward
   passes plus two training passes, against one, counting a backward as
   twice a forward);
3. peak memory of an AT iteration / a standard one (CUDA: peak allocated
   memory; CPU: growth of the peak RSS over the iteration, Linux only);
4. one N-FGSM AT iteration (mixed loss, separate passes) / one standard
   iteration (target <= 1.1 * 8 / 3: one attack forward+input-backward pass
   plus two training passes);
5. the same with the pure adversarial loss (adv_loss_weight 1, no clean
   pass; target <= 1.1 * 5 / 3);
6. channels-last speed-up: the PGD-K AT iteration with contiguous weights
   and inputs / the same with ``channels_last`` (what the config key
   ``channels_last = True`` sets); > 1 means channels-last is faster.

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
import ctypes
import statistics
import sys
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = 'configs/demo/resnet18-w16_1xb64_digits_pgdat.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--config',
        default=DEFAULT_CONFIG,
        help='an AT config (PGDDataPreprocessor + AdvImageClassifier)',
    )
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--img-size', type=int, default=32)
    parser.add_argument('--steps', type=int, default=10, help='PGD steps K')
    parser.add_argument('--eps', type=float, default=8.0, help='eps in pixel units of 255')
    parser.add_argument('--rounds', type=int, default=5, help='timed rounds per ratio')
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu', choices=['cpu', 'cuda']
    )
    parser.add_argument('--seed', type=int, default=0)
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
    pre.update(eps=args.eps, attack=dict(type='PGDAttack', steps=args.steps))
    model_cfg.update(type='AdvImageClassifier', adv_loss_weight=0.5, adv_forward='separate')
    std_cfg = copy.deepcopy(model_cfg)
    std_cfg['type'] = 'ImageClassifier'
    for key in ('adv_loss', 'adv_loss_weight', 'trades_beta', 'adv_forward'):
        std_cfg.pop(key, None)
    std_cfg['data_preprocessor'] = {
        k: v for k, v in pre.items() if k in ('mean', 'std', 'to_rgb', 'num_classes', 'to_onehot')
    }
    std_cfg['data_preprocessor']['type'] = 'ClsDataPreprocessor'

    torch.manual_seed(args.seed)
    at_model = MODELS.build(model_cfg).to(args.device)
    std_model = MODELS.build(std_cfg).to(args.device)
    std_model.load_state_dict(at_model.state_dict())

    num_classes = at_model.head.num_classes
    gen = torch.Generator().manual_seed(args.seed)
    batch = pseudo_collate(
        [
            dict(
                inputs=torch.randint(
                    0, 256, (3, args.img_size, args.img_size), dtype=torch.uint8, generator=gen
                ),
                data_samples=DataSample().set_gt_label(
                    int(torch.randint(num_classes, (1,), generator=gen))
                ),
            )
            for _ in range(args.batch_size)
        ]
    )

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
    from mmpretrain.models.utils.data_preprocessor import ClsDataPreprocessor

    pre = at_model.data_preprocessor
    data = ClsDataPreprocessor.forward(pre, copy.deepcopy(batch), True)
    inputs, labels = data['inputs'], pre.attack_targets(data['data_samples'])
    images = pre.to_unit_range(inputs)
    net = pre.normalized_classifier(at_model)
    reference = torchattacks.PGD(
        net, eps=args.eps / 255, steps=args.steps, alpha=pre.attack.get_step_size() / 255
    )
    at_model.train()  # as in training: the attack switches to eval and back
    ratio, ours, theirs = side_by_side(
        lambda: pre.attack_inputs(at_model, inputs, labels),
        lambda: reference(images, labels),
        args.rounds,
        args.device,
    )
    return ratio, ours, theirs


def iteration_ratio(args, at_model, std_model, batch, at_optim, std_optim):
    at_model.train()
    std_model.train()
    return side_by_side(
        lambda: at_model.train_step(copy.deepcopy(batch), at_optim),
        lambda: std_model.train_step(copy.deepcopy(batch), std_optim),
        args.rounds,
        args.device,
    )


def single_step_ratio(args, at_model, std_model, batch, at_optim, std_optim, weight):
    """N-FGSM AT iteration / standard iteration, with loss weight ``weight``."""
    from nofrost_mm.attacks import NFGSM

    pre = at_model.data_preprocessor
    saved = pre.attack, at_model.adv_loss_weight
    pre.attack, at_model.adv_loss_weight = NFGSM(eps=args.eps), weight
    try:
        return iteration_ratio(args, at_model, std_model, batch, at_optim, std_optim)
    finally:
        pre.attack, at_model.adv_loss_weight = saved


def channels_last_ratio(args, at_model, batch, at_optim):
    """PGD-K AT iteration in the default layout / in channels-last."""
    at_model.train()
    last_model = copy.deepcopy(at_model).to(memory_format=torch.channels_last)
    last_optim = type(at_optim)(torch.optim.SGD(last_model.parameters(), lr=1e-3, momentum=0.9))
    return side_by_side(
        lambda: at_model.train_step(copy.deepcopy(batch), at_optim),
        lambda: last_model.train_step(copy.deepcopy(batch), last_optim),
        args.rounds,
        args.device,
    )


def cuda_peak(model, batch, optim):
    model.train_step(copy.deepcopy(batch), optim)  # optimizer state allocated
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    model.train_step(copy.deepcopy(batch), optim)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def _status_kib(key):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'/proc/self/status has no {key}')


def cpu_peak(model, batch, optim):
    """Peak RSS growth over one iteration (Linux: VmHWM reset by clear_refs)."""
    model.train_step(copy.deepcopy(batch), optim)  # optimizer state allocated
    # hand memory freed by earlier work back to the OS, so that RSS follows
    # what this iteration allocates
    ctypes.CDLL('libc.so.6').malloc_trim(0)
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # resets VmHWM to the current RSS
    base = _status_kib('VmRSS')
    model.train_step(copy.deepcopy(batch), optim)
    return (_status_kib('VmHWM') - base) * 1024


def memory_ratio(args, at_model, std_model, batch, at_optim, std_optim):
    peak = cuda_peak if args.device == 'cuda' else cpu_peak
    at_model.train()
    std_model.train()
    std = peak(std_model, batch, std_optim)
    at = peak(at_model, batch, at_optim)
    return at / std, at, std


def main(argv=None):
    args = parse_args(argv)
    at_model, std_model, batch, at_optim, std_optim = build(args)
    k = args.steps
    print(
        f'config {args.config}, device {args.device}, batch {args.batch_size}x3x'
        f'{args.img_size}x{args.img_size}, PGD-{k} eps {args.eps}/255, '
        f'torch threads {torch.get_num_threads()}'
    )

    ratio, ours, theirs = generation_ratio(args, at_model, batch)
    print(
        f'1. PGD-{k} generation, PGDDataPreprocessor / torchattacks.PGD: {ratio:.3f} '
        f'(median {ours * 1e3:.1f} ms vs {theirs * 1e3:.1f} ms; target <= 1.0)'
    )

    ratio, at, std = iteration_ratio(args, at_model, std_model, batch, at_optim, std_optim)
    target = 1.1 * (2 * k + 6) / 3
    print(
        f'2. AT iteration / standard iteration: {ratio:.2f} (median {at * 1e3:.1f} ms vs '
        f'{std * 1e3:.1f} ms; target <= 1.1 x (2K+6)/3 = {target:.2f})'
    )

    ratio, at, std = memory_ratio(args, at_model, std_model, batch, at_optim, std_optim)
    what = 'peak allocated' if args.device == 'cuda' else 'peak RSS growth'
    print(
        f'3. peak memory, AT / standard iteration: {ratio:.2f} ({what} '
        f'{at / 2**20:.1f} MiB vs {std / 2**20:.1f} MiB)'
    )

    for row, weight, cost, units in ((4, 0.5, '8/3', 8 / 3), (5, 1.0, '5/3', 5 / 3)):
        ratio, at, std = single_step_ratio(
            args, at_model, std_model, batch, at_optim, std_optim, weight
        )
        loss = 'mixed' if weight < 1 else 'pure'
        print(
            f'{row}. N-FGSM AT iteration ({loss} loss) / standard iteration: '
            f'{ratio:.2f} (median {at * 1e3:.1f} ms vs {std * 1e3:.1f} ms; target '
            f'<= 1.1 x {cost} = {1.1 * units:.2f})'
        )

    ratio, contiguous, last = channels_last_ratio(args, at_model, batch, at_optim)
    print(
        f'6. PGD-{k} AT iteration, contiguous / channels-last: {ratio:.2f} (median '
        f'{contiguous * 1e3:.1f} ms vs {last * 1e3:.1f} ms; > 1: channels-last faster)'
    )


if __name__ == '__main__':
    main()
