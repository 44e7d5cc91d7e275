"""One-command GPU check: AT throughput, attack speed, memory and a distributed run.

Synthetic data only (random uint8 images; labels are the model's own
predictions where an attack needs correctly classified images), one GPU, at
most about 8 minutes at the defaults. For NF-ResNet-50
(``configs/_base_/models/nf-resnet50.py``) and BN ResNet-50 (mmpretrain's
``ResNet``, same head) at 224 px it measures images/s and peak memory of:

- a standard training iteration (``ImageClassifier``, fp32);
- PGD-10 adversarial training (``AdvImageClassifier`` + ``PGDDataPreprocessor``,
  0.5 clean + 0.5 adversarial loss, separate passes) in fp32, fp32
  channels-last, AMP (``AmpOptimWrapper``: the ``--amp`` path) and AMP
  channels-last;
- N-FGSM adversarial training (same loss) in fp32 and AMP channels-last;
- PGD-10 generation, ``PGDDataPreprocessor.attack_inputs`` against
  ``torchattacks.PGD`` with the same eps, steps and step size;
- standard AutoAttack (the plug-in's ``AutoAttack``: APGD-CE, APGD-T, FAB-T,
  Square) on a small batch, in fp32 and under fp16 and bf16 autocast as
  ``tools/test.py --amp`` runs it (``PrecisionSafeClassifier``, decisions in
  fp32; FAB-T in fp32, Square too under bf16), each with its robust
  accuracy (they should agree);
- PGD-10 adversarial training with bf16 AMP (``AmpOptimWrapper(dtype=
  'bfloat16')``) beside the fp16 one;

then runs ``tools/dist_train.sh`` with 1 process on a tiny digits config
(N-FGSM, channels-last): NCCL on a GPU, gloo on CPU. Prints one table and
writes all numbers to ``--out`` (JSON). On an untrained network the
AutoAttack time is mostly its first stage (APGD-CE breaks nearly everything).

``--tiny`` (the test suite, on CPU): 32 px, 8-channel-wide ResNet-50s, batch
2, one timed iteration, PGD-2, AMP as bf16 autocast; checks that every row
runs, times nothing worth reading.

Example:
    python benchmarks/gpu_check.py                      # on a GPU machine
    python benchmarks/gpu_check.py --tiny --device cpu  # smoke run
"""
import argparse
import copy
import json
import os
import os.path as osp
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
DIST_CONFIG = 'configs/demo/resnet18-w16_1xb64_digits_nfgsm.py'
DIST_OPTIONS = ['train_cfg.max_epochs=1', 'train_dataloader.dataset.indices=64',
                'train_dataloader.batch_size=32', 'val_dataloader.dataset.indices=32',
                'custom_hooks.0.val_attack.steps=2', 'channels_last=True',
                'default_hooks.logger.interval=1']


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        choices=['cpu', 'cuda'])
    parser.add_argument('--tiny', action='store_true',
                        help='32 px, tiny widths, 1 iteration: a smoke run (CPU tests)')
    parser.add_argument('--batch-size', type=int, default=None,
                        help='training batch (default 64; 2 with --tiny)')
    parser.add_argument('--img-size', type=int, default=None, help='default 224 (32 tiny)')
    parser.add_argument('--iters', type=int, default=None,
                        help='timed iterations per row after one warm-up (default 5)')
    parser.add_argument('--aa-batch', type=int, default=None,
                        help='images attacked by AutoAttack (default 16; 1 tiny)')
    parser.add_argument('--eps', type=float, default=8., help='pixel units of 255')
    parser.add_argument('--no-dist', action='store_true', help='skip the dist_train.sh run')
    parser.add_argument('--out', default='gpu_check.json')
    args = parser.parse_args(argv)
    tiny = args.tiny
    defaults = dict(batch_size=2 if tiny else 64, img_size=32 if tiny else 224,
                    iters=1 if tiny else 5, aa_batch=1 if tiny else 16)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
        if getattr(args, key) < 1:
            parser.error(f'--{key.replace("_", "-")} must be >= 1')
    args.steps = 2 if tiny else 10
    args.width = 8 if tiny else 64
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device here (use --device cpu)')
    return args


# -- models -------------------------------------------------------------------
def model_cfgs(args):
    """(name, backbone config) of the two ResNet-50s."""
    width = dict(stem_channels=args.width, base_channels=args.width)
    return [
        ('NF-ResNet-50', dict(type='NFResNet', depth=50, out_indices=(3, ), alpha=0.2,
                              drop_path_rate=0.1, **width)),
        ('BN ResNet-50', dict(type='ResNet', depth=50, out_indices=(3, ),
                              drop_path_rate=0.1, **width)),
    ]


def build_models(backbone, args, attack):
    """An AT classifier and a standard twin with the same weights."""
    from mmpretrain.registry import MODELS

    head = dict(type='DropoutLinearClsHead', num_classes=1000, in_channels=args.width * 32,
                dropout_rate=0.25, loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1))
    base = dict(backbone=copy.deepcopy(backbone), neck=dict(type='GlobalAveragePooling'),
                head=head)
    torch.manual_seed(0)
    at = MODELS.build(dict(base, type='AdvImageClassifier', data_preprocessor=dict(
        type='PGDDataPreprocessor', mean=MEAN, std=STD, to_rgb=True, num_classes=1000,
        attack=attack), adv_loss_weight=0.5, adv_forward='separate')).to(args.device)
    std = MODELS.build(dict(base, type='ImageClassifier', data_preprocessor=dict(
        type='ClsDataPreprocessor', mean=MEAN, std=STD, to_rgb=True,
        num_classes=1000))).to(args.device)
    std.load_state_dict(at.state_dict())
    return at, std


def synthetic_batch(args, n):
    from mmengine.dataset import pseudo_collate
    from mmpretrain.structures import DataSample

    gen = torch.Generator().manual_seed(0)
    return pseudo_collate([
        dict(inputs=torch.randint(0, 256, (3, args.img_size, args.img_size),
                                  dtype=torch.uint8, generator=gen),
             data_samples=DataSample().set_gt_label(
                 int(torch.randint(1000, (1, ), generator=gen))))
        for _ in range(n)])


def optim_wrapper(model, args, amp, dtype=None):
    """SGD in an OptimWrapper; AMP: AmpOptimWrapper on CUDA (fp16, or ``dtype``),
    bf16 autocast on CPU."""
    from mmengine.optim import AmpOptimWrapper, OptimWrapper

    class CpuBf16OptimWrapper(OptimWrapper):  # AmpOptimWrapper needs CUDA
        @contextmanager
        def optim_context(self, model):
            with super().optim_context(model), \
                    torch.autocast('cpu', dtype=torch.bfloat16):
                yield

    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    if not amp:
        return OptimWrapper(optimizer=optimizer)
    if args.device == 'cuda':
        if dtype is not None:
            return AmpOptimWrapper(optimizer=optimizer, dtype=dtype)
        return AmpOptimWrapper(optimizer=optimizer)  # fp16 + loss scaling: --amp
    return CpuBf16OptimWrapper(optimizer=optimizer)


@contextmanager
def memory_format(model, channels_last):
    """The model in channels-last for the block (as ``channels_last=True`` does)."""
    if not channels_last:
        yield
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        model.to(memory_format=torch.contiguous_format)


# -- timing -------------------------------------------------------------------
def _sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def measure(fn, args, images_per_call):
    """images/s over ``args.iters`` calls after one warm-up, and peak memory (MiB)."""
    fn()  # warm-up (cuDNN autotuning, allocator, optimizer state)
    _sync(args.device)
    if args.device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.iters):
        fn()
    _sync(args.device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**20 if args.device == 'cuda' else None
    return dict(images_per_s=images_per_call * args.iters / seconds,
                seconds_per_call=seconds / args.iters, peak_mib=peak)


def training_rows(name, backbone, args):
    from nofrost_mm.attacks import build_attack

    rows = {}
    pgd = dict(type='PGDAttack', eps=args.eps, steps=args.steps)
    nfgsm = dict(type='NFGSM', eps=args.eps)
    at, std = build_models(backbone, args, pgd)
    batch = synthetic_batch(args, args.batch_size)
    at.train()
    std.train()

    def step(model, wrapper):
        return lambda: model.train_step(copy.deepcopy(batch), wrapper)

    rows['standard iteration'] = measure(step(std, optim_wrapper(std, args, False)),
                                         args, args.batch_size)
    del std
    settings = [(f'PGD-{args.steps} AT fp32', pgd, False, False),
                (f'PGD-{args.steps} AT fp32 channels-last', pgd, False, True),
                (f'PGD-{args.steps} AT AMP', pgd, True, False),
                (f'PGD-{args.steps} AT AMP channels-last', pgd, True, True),
                (f'PGD-{args.steps} AT AMP bf16', pgd, 'bfloat16', False),
                ('N-FGSM AT fp32', nfgsm, False, False),
                ('N-FGSM AT AMP channels-last', nfgsm, True, True)]
    for label, attack, amp, channels_last in settings:
        at.data_preprocessor.attack = build_attack(attack)
        dtype = amp if isinstance(amp, str) else None
        with memory_format(at, channels_last):
            rows[label] = measure(step(at, optim_wrapper(at, args, bool(amp), dtype)),
                                  args, args.batch_size)
    return at, rows


def attack_rows(at, args):
    """PGD generation (ours vs torchattacks) and AutoAttack, fp32, eval mode."""
    import torchattacks
    from mmpretrain.models.utils.data_preprocessor import ClsDataPreprocessor

    from nofrost_mm.attacks import PGDAttack, build_attack

    pre = at.data_preprocessor
    pre.attack = PGDAttack(eps=args.eps, steps=args.steps)
    rows = {}
    for label, n in (('generation', args.batch_size), ('autoattack', args.aa_batch)):
        at.eval()
        data = ClsDataPreprocessor.forward(pre, synthetic_batch(args, n), False)
        inputs = data['inputs']
        with torch.no_grad():  # correctly classified by construction
            labels = at(inputs, mode='tensor').argmax(dim=1)
        images = pre.to_unit_range(inputs)
        # eval, wrapper included: torchattacks restores the wrapper's mode
        # on the whole model after each call
        net = pre.normalized_classifier(at).eval()
        if label == 'generation':
            reference = torchattacks.PGD(net, eps=args.eps / 255, steps=args.steps,
                                         alpha=pre.attack.get_step_size() / 255)
            rows[f'PGD-{args.steps} generation (PGDDataPreprocessor)'] = measure(
                lambda: pre.attack_inputs(at, inputs, labels, train_mode=False), args, n)
            rows[f'PGD-{args.steps} generation (torchattacks.PGD)'] = measure(
                lambda: reference(images, labels), args, n)
        else:
            attack = build_attack(dict(type='AutoAttack', eps=args.eps,
                                       version='standard'))
            saved, args.iters = args.iters, 1  # one timed run is long enough
            result = {}

            def run():
                adv = attack(net, images, labels)
                with torch.no_grad():
                    result['robust'] = (net(adv).argmax(1) == labels).float().mean().item()

            rows['AutoAttack standard'] = dict(measure(run, args, n),
                                               robust_accuracy=result['robust'] * 100)
            for precision, dtype in (('fp16', torch.float16), ('bf16', torch.bfloat16)):
                rows[f'AutoAttack standard {precision} autocast'] = amp_autoattack(
                    attack, net, images, labels, dtype, args)
            args.iters = saved
    return rows


def amp_autoattack(attack, net, images, labels, dtype, args):
    """AutoAttack under autocast as RobustTestLoop(fp16=True) runs it: the
    time, the robust accuracy (decided in fp32) and the precision it ran in."""
    from nofrost_mm.attacks import PrecisionSafeClassifier, fp32_predict
    from nofrost_mm.attacks.mixed_precision import attack_precision

    result = {}

    def run():
        safe = PrecisionSafeClassifier(net)
        with torch.autocast(args.device, dtype=dtype):
            result['precision'] = attack_precision(attack, args.device)
            adv = attack(safe, images, labels)
        result['robust'] = (fp32_predict(net, adv) == labels).float().mean().item()
        result['overflow_rows'] = safe.overflows.count

    return dict(measure(run, args, len(images)), robust_accuracy=result['robust'] * 100,
                precision=result['precision'], overflow_rows=result['overflow_rows'])


# -- distributed --------------------------------------------------------------
def dist_run(args, work_dir):
    """tools/dist_train.sh with 1 process; NCCL on GPUs, gloo on CPU."""
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PORT=str(port), PYTHON=sys.executable, PYTHONPATH=REPO_ROOT)
    cmd = ['bash', 'tools/dist_train.sh', DIST_CONFIG, '1', '--work-dir', work_dir,
           '--cfg-options', *DIST_OPTIONS]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    seconds = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    checkpoint = osp.join(work_dir, 'epoch_1.pth')
    ok = proc.returncode == 0 and 'Distributed training: True' in log \
        and osp.exists(checkpoint)
    kept = None
    if ok:  # saved tensors keep their strides: was the DDP model channels-last?
        weights = torch.load(checkpoint, map_location='cpu', weights_only=True)
        convs = [v for v in weights['state_dict'].values()
                 if v.dim() == 4 and v.shape[-1] > 1]
        kept = bool(convs) and all(
            v.is_contiguous(memory_format=torch.channels_last) and not v.is_contiguous()
            for v in convs)
    return dict(ok=ok, returncode=proc.returncode, seconds=seconds, channels_last_kept=kept,
                backend='nccl' if args.device == 'cuda' else 'gloo',
                command=' '.join(cmd), log_tail=log[-2000:] if not ok else '')


# -- report -------------------------------------------------------------------
def table(results):
    lines = ['| model | measurement | images/s | s/call | peak MiB | robust % |',
             '| --- | --- | --- | --- | --- | --- |']
    for model, rows in results['models'].items():
        for label, row in rows.items():
            peak = '-' if row['peak_mib'] is None else f'{row["peak_mib"]:.0f}'
            robust = '-' if 'robust_accuracy' not in row else \
                f'{row["robust_accuracy"]:.1f}' + (
                    f' ({row["precision"]})' if 'precision' in row else '')
            lines.append(f'| {model} | {label} | {row["images_per_s"]:.1f} | '
                         f'{row["seconds_per_call"]:.3f} | {peak} | {robust} |')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    from mmengine.registry import init_default_scope

    import nofrost_mm  # noqa: F401  (registers the plug-in)
    init_default_scope('mmpretrain')
    if args.device == 'cuda':
        torch.backends.cudnn.benchmark = True
    started = time.perf_counter()
    device_name = torch.cuda.get_device_name() if args.device == 'cuda' \
        else f'CPU ({platform.machine()}, {os.cpu_count()} cores)'
    print(f'gpu_check on {device_name}: batch {args.batch_size}x3x{args.img_size}x'
          f'{args.img_size}, PGD-{args.steps} eps {args.eps}/255, '
          f'{args.iters} timed iterations per row{" (TINY)" if args.tiny else ""}',
          flush=True)
    results = dict(device=device_name, torch=torch.__version__, tiny=args.tiny,
                   batch_size=args.batch_size, img_size=args.img_size,
                   pgd_steps=args.steps, eps=args.eps, models={})
    for name, backbone in model_cfgs(args):
        at, rows = training_rows(name, backbone, args)
        rows.update(attack_rows(at, args))
        standard = rows['standard iteration']['images_per_s']
        for row in rows.values():
            row['cost_vs_standard'] = standard / row['images_per_s']
        results['models'][name] = rows
        del at
        if args.device == 'cuda':
            torch.cuda.empty_cache()
        print(f'  {name}: done ({time.perf_counter() - started:.0f} s)', flush=True)
    if not args.no_dist:
        with tempfile.TemporaryDirectory() as work_dir:
            results['dist_train'] = dist_run(args, work_dir)
    results['seconds'] = time.perf_counter() - started
    print('\n' + table(results))
    if 'dist_train' in results:
        d = results['dist_train']
        print(f'\ntools/dist_train.sh, 1 process ({d["backend"]}): '
              f'{"OK" if d["ok"] else "FAILED"} in {d["seconds"]:.1f} s; channels-last '
              f'weights under DDP: {d["channels_last_kept"]}')
    print(f'total {results["seconds"]:.0f} s; wrote {args.out}')
    with open(args.out, 'w') as f:
        json.dump(results, f, indent=2)
    if 'dist_train' in results and not results['dist_train']['ok']:
        print(results['dist_train']['log_tail'], file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
