"""The one command for a short GPU lend: correctness rows (PASS/FAIL), then throughput and memory.

Everything goes to one JSON (``--out``) with what each row measured, so a
failure can be fixed without the machine. At the defaults it takes at most
about 8 minutes on one H100-class GPU (``--budget-s``: rows that would start
later are recorded as skipped); the distributed rows use every GPU present.

Correctness rows, each PASS, FAIL, ERROR (traceback in the JSON) or NEEDS GPU:

- device: every attack (PGD, APGD-CE/-T, FAB-T, Square, AutoAttack) and a PGD
  AT iteration run on the GPU, outputs there and finite;
- host syncs (``torch.cuda.set_sync_debug_mode``, file:line of each): one
  PGD-10 AT iteration of an NF-ResNet with AGC at most 2; each AutoAttack
  member at most 1 per iteration on average (issue 37's budget);
- per-sample random numbers (random starts, Square's draws) equal on CPU and
  CUDA, bit for bit;
- PGD-10, APGD-CE and AutoAttack under fp16 and bf16 autocast (as
  ``tools/test.py --amp`` runs them) as strong as fp32, on a digits CNN
  trained here and on the same net sharpened (logits x 30) (issue 35);
- FAB-T and Square alone break samples of a net APGD-CE does not break
  completely;
- channels-last: PGD and AutoAttack give the contiguous net's robust accuracy;
- ``tools/dist_train.sh`` (channels-last weights kept through DDP),
  ``tools/test.py`` and ``tools/dist_test.sh`` (NCCL on GPUs, gloo on CPU):
  the distributed test gives the one-process numbers.

Then, for NF-ResNet-50 (``configs/_base_/models/nf-resnet50.py``) and BN
ResNet-50 (mmpretrain's ``ResNet``, same head) at 224 px, images/s and peak
memory of: a standard training iteration; PGD-10 adversarial training
(``AdvImageClassifier`` + ``PGDDataPreprocessor``, 0.5 clean + 0.5
adversarial loss) in fp32, fp32 channels-last, AMP (fp16 and bf16) and AMP
channels-last; N-FGSM AT; PGD-10 generation against ``torchattacks.PGD``;
standard AutoAttack on a small batch in fp32 and under fp16 and bf16
autocast, with its robust accuracy, timed after a warm-up call and without
cuDNN autotuning (as the robust test loops run it); and the NF / BN cost
ratios. Synthetic data (labels are the model's own predictions where an
attack needs correctly classified images).

``--tiny`` (the test suite, on CPU): tiny sizes everywhere; the rows that
need a GPU say so (NEEDS GPU), the others run.

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
import traceback
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:  # the plug-in from this checkout when run as a script
    sys.path.insert(0, REPO)
from nofrost_mm.utils.cudnn import cudnn_autotuning  # noqa: E402

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
DIST_CONFIG = 'configs/demo/resnet18-w16_1xb64_digits_nfgsm.py'
DIST_OPTIONS = [
    'train_cfg.max_epochs=1',
    'train_dataloader.dataset.indices=64',
    'train_dataloader.batch_size=32',
    'val_dataloader.dataset.indices=32',
    'custom_hooks.0.val_attack.steps=2',
    'channels_last=True',
    'default_hooks.logger.interval=1',
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu', choices=['cpu', 'cuda']
    )
    parser.add_argument(
        '--tiny',
        action='store_true',
        help='32 px, tiny widths, 1 iteration: a smoke run (CPU tests)',
    )
    parser.add_argument(
        '--batch-size', type=int, default=None, help='training batch (default 64; 2 with --tiny)'
    )
    parser.add_argument('--img-size', type=int, default=None, help='default 224 (32 tiny)')
    parser.add_argument(
        '--iters',
        type=int,
        default=None,
        help='timed iterations per row after one warm-up (default 5)',
    )
    parser.add_argument(
        '--aa-batch',
        type=int,
        default=None,
        help='images attacked by AutoAttack (default 16; 1 tiny)',
    )
    parser.add_argument('--eps', type=float, default=8.0, help='pixel units of 255')
    parser.add_argument(
        '--no-dist',
        action='store_true',
        help='skip the dist_train.sh / test.py / dist_test.sh rows',
    )
    parser.add_argument(
        '--dry-run-gpu-rows',
        action='store_true',
        help='without a GPU, also run the code of the rows that need '
        'one on the CPU (no verdict; the tests use it)',
    )
    parser.add_argument(
        '--budget-s',
        type=float,
        default=None,
        help='rows that would start after this many seconds are '
        'skipped (default 480: 8 minutes; none with --tiny)',
    )
    parser.add_argument('--out', default='gpu_check.json')
    args = parser.parse_args(argv)
    tiny = args.tiny
    defaults = dict(
        batch_size=2 if tiny else 64,
        img_size=32 if tiny else 224,
        iters=1 if tiny else 5,
        aa_batch=1 if tiny else 16,
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
        if getattr(args, key) < 1:
            parser.error(f'--{key.replace("_", "-")} must be >= 1')
    if args.budget_s is None:
        args.budget_s = float('inf') if tiny else 480.0
    args.steps = 2 if tiny else 10
    args.width = 8 if tiny else 64
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device here (use --device cpu)')
    return args


# -- models -------------------------------------------------------------------
def model_cfgs(args, tiny=False):
    """(name, backbone config) of the two ResNet-50s (``tiny``: 8 wide)."""
    w = 8 if tiny else args.width
    width = dict(stem_channels=w, base_channels=w)
    return [
        (
            'NF-ResNet-50',
            dict(
                type='NFResNet', depth=50, out_indices=(3,), alpha=0.2, drop_path_rate=0.1, **width
            ),
        ),
        (
            'BN ResNet-50',
            dict(type='ResNet', depth=50, out_indices=(3,), drop_path_rate=0.1, **width),
        ),
    ]


def build_models(backbone, args, attack, tiny=False):
    """An AT classifier and a standard twin with the same weights."""
    from mmpretrain.registry import MODELS

    w = backbone.get('base_channels', args.width) if tiny else args.width
    head = dict(
        type='DropoutLinearClsHead',
        num_classes=1000,
        in_channels=w * 32,
        dropout_rate=0.25,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1),
    )
    base = dict(backbone=copy.deepcopy(backbone), neck=dict(type='GlobalAveragePooling'), head=head)
    torch.manual_seed(0)
    at = MODELS.build(
        dict(
            base,
            type='AdvImageClassifier',
            data_preprocessor=dict(
                type='PGDDataPreprocessor',
                mean=MEAN,
                std=STD,
                to_rgb=True,
                num_classes=1000,
                # the training eps is the preprocessor's, the rest the attack's
                eps=attack['eps'],
                attack={k: v for k, v in attack.items() if k != 'eps'},
            ),
            adv_loss_weight=0.5,
            adv_forward='separate',
        )
    ).to(args.device)
    std = MODELS.build(
        dict(
            base,
            type='ImageClassifier',
            data_preprocessor=dict(
                type='ClsDataPreprocessor', mean=MEAN, std=STD, to_rgb=True, num_classes=1000
            ),
        )
    ).to(args.device)
    std.load_state_dict(at.state_dict())
    return at, std


def synthetic_batch(args, n, size=None):
    from mmengine.dataset import pseudo_collate
    from mmpretrain.structures import DataSample

    gen = torch.Generator().manual_seed(0)
    size = size or args.img_size
    return pseudo_collate(
        [
            dict(
                inputs=torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=gen),
                data_samples=DataSample().set_gt_label(
                    int(torch.randint(1000, (1,), generator=gen))
                ),
            )
            for _ in range(n)
        ]
    )


def optim_wrapper(model, args, amp, dtype=None):
    """SGD in an OptimWrapper; AMP: AmpOptimWrapper on CUDA (fp16, or ``dtype``),
    bf16 autocast on CPU."""
    from mmengine.optim import AmpOptimWrapper, OptimWrapper

    class CpuBf16OptimWrapper(OptimWrapper):  # AmpOptimWrapper needs CUDA
        @contextmanager
        def optim_context(self, model):
            with super().optim_context(model), torch.autocast('cpu', dtype=torch.bfloat16):
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


_STARTED = time.perf_counter()


def over_budget(args) -> bool:
    """Whether ``--budget-s`` seconds have passed since the start."""
    return time.perf_counter() - _STARTED > args.budget_s


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
    return dict(
        images_per_s=images_per_call * args.iters / seconds,
        seconds_per_call=seconds / args.iters,
        peak_mib=peak,
    )


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

    rows['standard iteration'] = measure(
        step(std, optim_wrapper(std, args, False)), args, args.batch_size
    )
    del std
    settings = [
        (f'PGD-{args.steps} AT fp32', pgd, False, False),
        (f'PGD-{args.steps} AT fp32 channels-last', pgd, False, True),
        (f'PGD-{args.steps} AT AMP', pgd, True, False),
        (f'PGD-{args.steps} AT AMP channels-last', pgd, True, True),
        (f'PGD-{args.steps} AT AMP bf16', pgd, 'bfloat16', False),
        ('N-FGSM AT fp32', nfgsm, False, False),
        ('N-FGSM AT AMP channels-last', nfgsm, True, True),
    ]
    for label, attack, amp, channels_last in settings:
        if over_budget(args):
            break
        at.data_preprocessor.attack = build_attack(attack)
        dtype = amp if isinstance(amp, str) else None
        with memory_format(at, channels_last):
            rows[label] = measure(
                step(at, optim_wrapper(at, args, bool(amp), dtype)), args, args.batch_size
            )
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
        if over_budget(args):
            break
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
            reference = torchattacks.PGD(
                net, eps=args.eps / 255, steps=args.steps, alpha=pre.attack.get_step_size() / 255
            )
            rows[f'PGD-{args.steps} generation (PGDDataPreprocessor)'] = measure(
                lambda: pre.attack_inputs(at, inputs, labels, train_mode=False), args, n
            )
            rows[f'PGD-{args.steps} generation (torchattacks.PGD)'] = measure(
                lambda: reference(images, labels), args, n
            )
        else:
            attack = build_attack(dict(type='AutoAttack', eps=args.eps, version='standard'))
            saved, args.iters = args.iters, 1  # one timed run is long enough
            result = {}

            def run():
                adv = attack(net, images, labels)
                with torch.no_grad():
                    result['robust'] = (net(adv).argmax(1) == labels).float().mean().item()

            # as the robust test loops run it: no cuDNN autotuning for each
            # survivor batch size (measure() times after a warm-up call)
            with cudnn_autotuning(False):
                rows['AutoAttack standard'] = dict(
                    measure(run, args, n), robust_accuracy=result['robust'] * 100
                )
                for precision, dtype in (('fp16', torch.float16), ('bf16', torch.bfloat16)):
                    if over_budget(args):
                        break
                    rows[f'AutoAttack standard {precision} autocast'] = amp_autoattack(
                        attack, net, images, labels, dtype, args
                    )
            args.iters = saved
    if not over_budget(args):
        rows.update(targeted_memory_rows(at, args))
    return rows


def targeted_memory_rows(at, args):
    """Peak memory of APGD-T and FAB-T (one iteration) on 2 x ``--aa-batch``
    survivors with AutoAttack's default ``target_batch='auto'`` (rows of at
    most 2**25 input elements: 222 images at 224 px) against 1 x: bounded by
    the pass, not by survivors x 9 targets."""
    from mmpretrain.models.utils.data_preprocessor import ClsDataPreprocessor

    from nofrost_mm.attacks import APGDAttack, FABAttack
    from nofrost_mm.attacks.autoattack.autoattack_member import rows_per_pass
    from nofrost_mm.utils import sample_keys

    pre = at.data_preprocessor
    at.eval()
    net = pre.normalized_classifier(at).eval()
    rows = {}
    for n in (args.aa_batch, 2 * args.aa_batch):
        data = ClsDataPreprocessor.forward(pre, synthetic_batch(args, n), False)
        with torch.no_grad():
            logits = at(data['inputs'], mode='tensor')
        images = pre.to_unit_range(data['inputs'])
        keys = sample_keys(0, torch.arange(n), args.device)
        for name, attack in (
            ('APGD-T', APGDAttack(eps=args.eps, steps=1, loss='dlr-targeted')),
            ('FAB-T', FABAttack(eps=args.eps, steps=1)),
        ):
            _sync(args.device)
            if args.device == 'cuda':
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            start = time.perf_counter()
            with torch.enable_grad(), cudnn_autotuning(False):
                attack.perturb(net, images, logits.argmax(1), keys, logits)
            _sync(args.device)
            seconds = time.perf_counter() - start
            rows[f'{name} 1 step, {n} survivors, target_batch=auto'] = dict(
                images_per_s=n / seconds,
                seconds_per_call=seconds,
                peak_mib=(torch.cuda.max_memory_allocated() - base) / 2**20
                if args.device == 'cuda'
                else None,
                rows=9 * n,
                rows_per_pass=rows_per_pass('auto', images),
            )
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

    return dict(
        measure(run, args, len(images)),
        robust_accuracy=result['robust'] * 100,
        precision=result['precision'],
        overflow_rows=result['overflow_rows'],
    )


# -- correctness rows ----------------------------------------------------------
class Rows:
    """The correctness rows: each PASS, FAIL, ERROR (with its traceback) or
    NEEDS GPU (on a machine without one), with what it measured."""

    def __init__(self, args):
        self.args, self.rows = args, []

    def run(self, name, fn, needs_gpu=False, how=''):
        """``fn() -> (passed, details)``; ``how`` says what the row checks and
        where to look when it fails."""
        row = dict(name=name, needs_gpu=needs_gpu, checks=how)
        start = time.perf_counter()
        if needs_gpu and self.args.device != 'cuda':
            row.update(status='NEEDS GPU', details={})
            if self.args.dry_run_gpu_rows:  # its code on the CPU, no verdict
                try:
                    passed, details = fn()
                    row['dry_run'] = dict(passed=passed, details=details)
                except Exception as e:  # noqa: BLE001
                    row['dry_run'] = dict(
                        error=f'{type(e).__name__}: {e}', traceback=traceback.format_exc()[-4000:]
                    )
        else:
            try:
                passed, details = fn()
                row.update(status='PASS' if passed else 'FAIL', details=details)
            except Exception as e:  # noqa: BLE001  (a row's crash is its result)
                row.update(
                    status='ERROR',
                    details={},
                    error=f'{type(e).__name__}: {e}',
                    traceback=traceback.format_exc()[-4000:],
                )
            _sync(self.args.device)
        row['seconds'] = round(time.perf_counter() - start, 2)
        self.rows.append(row)
        print(
            f'  [{row["status"]}] {name} ({row["seconds"]:.1f} s)'
            + (f': {row.get("error", "")}' if row['status'] == 'ERROR' else ''),
            flush=True,
        )
        return row


class DigitsCNN(nn.Module):
    """A small conv net with BatchNorm for 16 px digits (trained in seconds);
    ``scale`` multiplies its logits (a sharpened, confident net)."""

    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = scale
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(self.features(x)) * self.scale


_DIGITS = {}


def digits(device, train):
    """sklearn's digits as (N, 3, 16, 16) images in [0, 1] and labels."""
    if not _DIGITS:  # loaded once: several rows use them
        from nofrost_mm.datasets.digits import _load_digits  # no sklearn import

        images, target = _load_digits()
        x = torch.tensor(images, dtype=torch.float32)[:, None] / 16.0
        _DIGITS['x'] = F.interpolate(x, size=16, mode='bilinear', align_corners=False).repeat(
            1, 3, 1, 1
        )
        _DIGITS['y'] = torch.tensor(target)
    x, y = _DIGITS['x'], _DIGITS['y']
    idx = torch.arange(len(x))
    idx = idx[idx % 5 != 0] if train else idx[idx % 5 == 0]
    return x[idx].clamp(0, 1).to(device), y[idx].to(device)


_TRAINED = {}


def trained_digits_net(args):
    """DigitsCNN trained with Adam on the device (eval mode, frozen; once)."""
    if args.device in _TRAINED:
        return _TRAINED[args.device]
    torch.manual_seed(0)
    x, y = digits(args.device, train=True)
    net = DigitsCNN().to(args.device)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for i in range(80 if args.tiny else 400):  # tiny: about 95% on test digits
        idx = torch.arange(i * 128, (i + 1) * 128, device=args.device) % len(x)
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    _TRAINED[args.device] = net.eval().requires_grad_(False)
    return _TRAINED[args.device]


def robust_accuracy(net, attack, x, y, keys, dtype=None):
    """% of ``x`` correct after ``attack`` (decided in fp32); under autocast
    ``dtype`` as the robust test loop runs a reduced-precision attack."""
    from nofrost_mm.attacks import PrecisionSafeClassifier, fp32_predict

    correct = fp32_predict(net, x) == y
    todo = correct.nonzero()[:, 0]
    with (
        torch.enable_grad(),
        cudnn_autotuning(False),
        torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None),
    ):
        model = PrecisionSafeClassifier(net) if dtype is not None else net
        adv = attack(model, x[todo], y[todo], keys=keys[todo])
    correct[todo] = fp32_predict(net, adv) == y[todo]
    return 100.0 * correct.float().mean().item()


def test_digits(args):
    n = 16 if args.tiny else 256
    x, y = digits(args.device, train=False)
    from nofrost_mm.utils import sample_keys

    return x[:n], y[:n], sample_keys(0, torch.arange(n), args.device)


def device_row(args):
    """Every attack and an AT iteration on the device: outputs there, finite."""
    from nofrost_mm.attacks import APGDAttack, AutoAttack, FABAttack, PGDAttack, SquareAttack

    net = DigitsCNN().to(args.device).eval().requires_grad_(False)
    x, y, keys = test_digits(args)
    x, y, keys = x[:8], y[:8], keys[:8]
    details = {}
    attacks = dict(
        pgd=PGDAttack(eps=8, steps=3),
        apgd_ce=APGDAttack(eps=8, steps=3),
        apgd_t=APGDAttack(eps=8, steps=3, loss='dlr-targeted'),
        fab_t=FABAttack(eps=8, steps=3),
        square=SquareAttack(eps=8, n_queries=20),
        autoattack=AutoAttack(eps=8),
    )
    for name, attack in attacks.items():
        if name == 'autoattack':
            attack.members = [
                (n, type(m)(eps=8, **(dict(n_queries=20) if n == 'square' else dict(steps=3))))
                if n != 'apgd-t'
                else (n, APGDAttack(eps=8, steps=3, loss='dlr-targeted'))
                for n, m in attack.members
            ]
        with torch.enable_grad():
            adv = attack(net, x, y, keys=keys)
        details[name] = dict(device=str(adv.device), finite=bool(adv.isfinite().all()))
    at, _ = build_models(
        model_cfgs(args, tiny=True)[0][1], args, dict(type='PGDAttack', eps=8, steps=2), tiny=True
    )
    batch = synthetic_batch(args, 2, size=32)
    log = at.train().train_step(batch, optim_wrapper(at, args, False))
    details['at_iteration'] = dict(
        loss_device=str(log['loss'].device), finite=bool(torch.isfinite(log['loss']))
    )
    ok = all(d.get('finite') for d in details.values()) and all(
        d.get('device', d.get('loss_device', '')).startswith(args.device) for d in details.values()
    )
    return ok, details


def count_syncs(fn):
    """Host-device syncs ``fn()`` makes (torch.cuda.set_sync_debug_mode)."""
    import warnings

    if not torch.cuda.is_available():  # --dry-run-gpu-rows: nothing to count
        fn()
        return 0, ['no CUDA: not counted']
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        torch.cuda.set_sync_debug_mode('warn')
        try:
            fn()
            torch.cuda.set_sync_debug_mode(0)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    where = [
        str(w.filename) + ':' + str(w.lineno) for w in caught if 'synchroniz' in str(w.message)
    ]
    return len(where), sorted(set(where))[:20]


def at_sync_row(args):
    """Syncs of one PGD-10 AT iteration (NF-ResNet with AGC), after a warm-up:
    the budget is 2 outside logging iterations."""
    steps = 2 if args.tiny else 10  # the budget does not depend on the steps
    at, _ = build_models(
        model_cfgs(args, tiny=True)[0][1],
        args,
        dict(type='PGDAttack', eps=8, steps=steps),
        tiny=True,
    )
    batch = synthetic_batch(args, 2 if args.tiny else 8, size=32)
    optimizer = torch.optim.SGD(at.parameters(), lr=1e-4, momentum=0.9)
    from nofrost_mm.engine.optim_wrappers.agc_optim_wrapper import AGCOptimWrapper

    wrapper = AGCOptimWrapper(optimizer=optimizer, clip_grad=dict(type='agc', clip_factor=0.01))
    wrapper.set_agc_model(at)
    at.train()
    at.train_step(copy.deepcopy(batch), wrapper)  # warm-up
    syncs, where = count_syncs(lambda: at.train_step(copy.deepcopy(batch), wrapper))
    return syncs <= 2, dict(syncs_per_iteration=syncs, budget=2, pgd_steps=steps, where=where)


def member_sync_row(args):
    """Syncs per iteration of each AutoAttack member (budget: 1 on average)."""
    from nofrost_mm.attacks import APGDAttack, FABAttack, SquareAttack

    net = trained_digits_net(args)
    x, y, keys = test_digits(args)
    details, ok = {}, True
    steps, queries = (5, 20) if args.tiny else (20, 100)
    for name, attack, iters in (
        ('apgd-ce', APGDAttack(eps=4, steps=steps), steps),
        ('apgd-t', APGDAttack(eps=4, steps=steps, loss='dlr-targeted'), steps),
        ('fab-t', FABAttack(eps=4, steps=steps), steps),
        ('square', SquareAttack(eps=4, n_queries=queries), queries),
    ):
        with torch.enable_grad():
            syncs, where = count_syncs(lambda: attack(net, x, y, keys=keys))
        details[name] = dict(
            syncs=syncs, iterations=iters, per_iteration=round(syncs / iters, 2), where=where
        )
        ok = ok and syncs <= iters
    return ok, details


def random_start_row(args):
    """The per-sample random numbers (random starts, Square's draws) are the
    same on CPU and CUDA, bit for bit."""
    from nofrost_mm.utils.sample_random import (
        sample_keys,
        sample_normal,
        sample_randint,
        sample_uniform,
    )

    keys = sample_keys(3, torch.arange(64))
    details = {}
    for name, fn in (
        ('uniform', lambda k: sample_uniform(k, (3, 8, 8), stream=5)),
        ('normal', lambda k: sample_normal(k, (3, 8, 8), stream=6)),
        ('randint', lambda k: sample_randint(k, 1000, (4,), stream=7)),
    ):
        cpu, cuda = fn(keys), fn(keys.to(args.device)).cpu()
        details[name] = dict(
            equal=bool(torch.equal(cpu, cuda)),
            max_abs_diff=float((cpu.double() - cuda.double()).abs().max()),
        )
    from nofrost_mm.attacks import PGDAttack

    net = DigitsCNN()
    torch.manual_seed(0)
    x, y, k = torch.rand(4, 3, 16, 16), torch.arange(4), sample_keys(0, torch.arange(4))
    with torch.enable_grad():
        a = PGDAttack(eps=8, steps=1)(net.eval(), x, y, keys=k)
        b = PGDAttack(eps=8, steps=1)(
            net.to(args.device), x.to(args.device), y.to(args.device), keys=k.to(args.device)
        ).cpu()
    # one step from the same start: within a sign flip of float noise
    details['pgd_1_step'] = dict(max_abs_diff=float((a - b).abs().max()))
    ok = all(d['equal'] for n, d in details.items() if n != 'pgd_1_step')
    return ok, details


def precision_rows(args, rows):
    """fp16 and bf16 attacks as strong as fp32 on a trained net and on the same
    net sharpened (logits x 30): robust accuracy at most 1 point (or one
    sample) above fp32's."""
    from nofrost_mm.attacks import APGDAttack, PGDAttack

    net = trained_digits_net(args)
    x, y, keys = test_digits(args)
    slack = max(1.0, 100.0 / len(x))
    sharp = DigitsCNN(scale=30.0).to(args.device)
    sharp.load_state_dict(net.state_dict())
    sharp.eval().requires_grad_(False)
    dtypes = [('fp16', torch.float16), ('bf16', torch.bfloat16)]
    for label, model in (('trained', net), ('sharpened x30', sharp)):
        attacks = [
            ('PGD-10', PGDAttack(eps=4, steps=10)),
            ('APGD-CE', APGDAttack(eps=4, steps=50)),
            ('AutoAttack', small_autoattack(4, args)),
        ]
        for attack_name, attack in attacks[::2] if args.tiny else attacks:

            def row(attack=attack, model=model):
                fp32 = robust_accuracy(model, attack, x, y, keys)
                details = dict(fp32=fp32, slack_points=slack)
                for name, dtype in dtypes:
                    if args.device == 'cpu' and dtype == torch.float16:
                        continue  # fp16 autocast is a GPU path
                    details[name] = robust_accuracy(model, attack, x, y, keys, dtype)
                return all(details[n] <= fp32 + slack for n, _ in dtypes if n in details), details

            rows.run(
                f'{attack_name} under fp16/bf16 autocast as strong as fp32 ({label})',
                row,
                how='robust accuracy under autocast (PrecisionSafeClassifier, '
                'decisions in fp32) <= fp32 + 1 point; issue 35',
            )


def small_autoattack(eps, args):
    """Standard AutoAttack's cascade with fewer iterations and queries."""
    from nofrost_mm.attacks import APGDAttack, AutoAttack, FABAttack, SquareAttack

    aa = AutoAttack(eps=eps)
    steps = 5 if args.tiny else 50
    aa.members = [
        ('apgd-ce', APGDAttack(eps=eps, steps=steps)),
        ('apgd-t', APGDAttack(eps=eps, steps=steps, loss='dlr-targeted')),
        ('fab-t', FABAttack(eps=eps, steps=steps)),
        ('square', SquareAttack(eps=eps, n_queries=50 if args.tiny else 1000)),
    ]
    return aa


def fab_square_row(args):
    """FAB-T and Square alone break samples of a trained net that APGD-CE
    does not break completely."""
    from nofrost_mm.attacks import APGDAttack, FABAttack, SquareAttack

    net = trained_digits_net(args)
    x, y, keys = test_digits(args)
    details = {}
    for eps in (8, 6, 4, 2):  # the largest eps whose APGD-CE leaves some robust
        ce = robust_accuracy(net, APGDAttack(eps=eps, steps=10 if args.tiny else 20), x, y, keys)
        if ce > 0:
            break
    clean = robust_accuracy(net, lambda m, a, b, keys=None: a, x, y, keys)
    details.update(eps=eps, clean=clean, apgd_ce=ce)
    details['fab_t'] = robust_accuracy(
        net, FABAttack(eps=eps, steps=10 if args.tiny else 50), x, y, keys
    )
    details['square'] = robust_accuracy(
        net, SquareAttack(eps=eps, n_queries=300 if args.tiny else 1000), x, y, keys
    )
    ok = 0 < ce < clean and details['fab_t'] < clean and details['square'] < clean
    return ok, details


def channels_last_row(args):
    """PGD and AutoAttack on the channels-last net: the same robust accuracy
    as contiguous, within one sample (float paths differ)."""
    net = trained_digits_net(args)
    x, y, keys = test_digits(args)
    from nofrost_mm.attacks import PGDAttack

    details = {}
    for name, attack in (
        ('PGD-10', PGDAttack(eps=4, steps=10)),
        ('AutoAttack', small_autoattack(4, args)),
    ):
        plain = robust_accuracy(net, attack, x, y, keys)
        cl = copy.deepcopy(net).to(memory_format=torch.channels_last)
        xc = x.contiguous(memory_format=torch.channels_last)
        details[name] = dict(
            contiguous=plain, channels_last=robust_accuracy(cl, attack, xc, y, keys)
        )
    slack = 100.0 / len(x) + 1e-6
    return all(
        abs(d['contiguous'] - d['channels_last']) <= slack for d in details.values()
    ), details


# -- distributed --------------------------------------------------------------
def _nproc(args) -> int:
    """Processes of the distributed rows: every GPU present (1 on CPU)."""
    return torch.cuda.device_count() if args.device == 'cuda' else 1


def _tool(cmd, env=None):
    import socket

    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    env = dict(
        os.environ, PORT=str(port), PYTHON=sys.executable, PYTHONPATH=REPO_ROOT, **(env or {})
    )
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    return proc, time.perf_counter() - start


def dist_run(args, work_dir):
    """tools/dist_train.sh on every GPU (NCCL), or 1 process on CPU (gloo)."""
    cmd = [
        'bash',
        'tools/dist_train.sh',
        DIST_CONFIG,
        str(_nproc(args)),
        '--work-dir',
        work_dir,
        '--cfg-options',
        *DIST_OPTIONS,
    ]
    proc, seconds = _tool(cmd)
    log = proc.stdout + proc.stderr
    checkpoint = osp.join(work_dir, 'epoch_1.pth')
    ok = proc.returncode == 0 and 'Distributed training: True' in log and osp.exists(checkpoint)
    kept = None
    if ok:  # saved tensors keep their strides: was the DDP model channels-last?
        weights = torch.load(checkpoint, map_location='cpu', weights_only=True)
        convs = [v for v in weights['state_dict'].values() if v.dim() == 4 and v.shape[-1] > 1]
        kept = bool(convs) and all(
            v.is_contiguous(memory_format=torch.channels_last) and not v.is_contiguous()
            for v in convs
        )
    return dict(
        ok=ok,
        returncode=proc.returncode,
        seconds=seconds,
        channels_last_kept=kept,
        backend='nccl' if args.device == 'cuda' else 'gloo',
        nproc=_nproc(args),
        checkpoint=checkpoint if ok else None,
        command=' '.join(cmd),
        log_tail=log[-3000:] if not ok else '',
    )


TEST_ARGS = ['--num-samples', '16', '--attacks', "{'type': 'PGDAttack', 'steps': 3}", 'FGSM']


def test_tools_row(args, checkpoint, work_dir):
    """tools/test.py (1 process) and tools/dist_test.sh (every GPU, NCCL; gloo
    on CPU) on the dist_train checkpoint: the same robust numbers."""
    results, details = {}, {}
    for name, cmd in (
        ('test.py', [sys.executable, 'tools/test.py', DIST_CONFIG, checkpoint]),
        (
            'dist_test.sh',
            ['bash', 'tools/dist_test.sh', DIST_CONFIG, checkpoint, str(_nproc(args))],
        ),
    ):
        out = osp.join(work_dir, f'{name}.json')
        full = cmd + ['--work-dir', osp.join(work_dir, name), '--out', out, *TEST_ARGS]
        proc, seconds = _tool(full)
        log = proc.stdout + proc.stderr
        details[name] = dict(
            returncode=proc.returncode, seconds=round(seconds, 1), command=' '.join(full)
        )
        if proc.returncode or not osp.exists(out):
            details[name]['log_tail'] = log[-3000:]
            return False, details
        with open(out) as f:
            metrics = json.load(f)
        results[name] = {
            k: v
            for k, v in metrics.items()
            if k.startswith('robust/') and '/time_s/' not in k and '/precision/' not in k
        }
    details.update(
        one_process=results['test.py'],
        distributed=results['dist_test.sh'],
        backend='nccl' if args.device == 'cuda' else 'gloo',
        nproc=_nproc(args),
    )
    return bool(results['test.py']) and results['test.py'] == results['dist_test.sh'], details


# -- report -------------------------------------------------------------------
def table(results):
    lines = [
        '| model | measurement | images/s | s/call | peak MiB | robust % |',
        '| --- | --- | --- | --- | --- | --- |',
    ]
    for model, rows in results['models'].items():
        for label, row in rows.items():
            peak = '-' if row['peak_mib'] is None else f'{row["peak_mib"]:.0f}'
            robust = (
                '-'
                if 'robust_accuracy' not in row
                else f'{row["robust_accuracy"]:.1f}'
                + (f' ({row["precision"]})' if 'precision' in row else '')
            )
            lines.append(
                f'| {model} | {label} | {row["images_per_s"]:.1f} | '
                f'{row["seconds_per_call"]:.3f} | {peak} | {robust} |'
            )
    return '\n'.join(lines)


def correctness(args, work_dir):
    """The correctness rows (see the module docstring), in order."""
    rows = Rows(args)
    rows.run(
        'device: every attack and a PGD AT iteration on the GPU',
        lambda: device_row(args),
        needs_gpu=True,
        how='outputs on the device and finite; a device mix raises here',
    )
    rows.run(
        'host syncs: PGD-10 AT iteration (NF-ResNet, AGC) <= 2',
        lambda: at_sync_row(args),
        needs_gpu=True,
        how='torch.cuda.set_sync_debug_mode; details.where lists file:line',
    )
    rows.run(
        'host syncs: AutoAttack members <= 1 per iteration',
        lambda: member_sync_row(args),
        needs_gpu=True,
        how='syncs / iterations of APGD-CE, APGD-T, FAB-T (20 steps), Square '
        '(100 queries) on 256 digits; details.where lists file:line',
    )
    rows.run(
        'random starts: per-sample numbers equal on CPU and CUDA',
        lambda: random_start_row(args),
        needs_gpu=True,
        how='nofrost_mm.utils.sample_random on keys on both devices, bit for bit',
    )
    precision_rows(args, rows)
    rows.run(
        'FAB-T and Square attack (net APGD-CE leaves partly robust)',
        lambda: fab_square_row(args),
        how='robust accuracy after FAB-T alone and Square alone < clean',
    )
    rows.run(
        'channels-last: PGD and AutoAttack as on contiguous',
        lambda: channels_last_row(args),
        how='robust accuracy within one sample of the contiguous net',
    )
    dist = None
    if not args.no_dist:

        def train():
            nonlocal dist
            dist = dist_run(args, osp.join(work_dir, 'train'))
            return bool(dist['ok'] and dist['channels_last_kept']), dist

        rows.run(
            f'tools/dist_train.sh ({"NCCL" if args.device == "cuda" else "gloo"}, '
            f'{_nproc(args)} process(es), channels-last)',
            train,
            how='exit 0, a checkpoint, conv weights still channels-last',
        )
        rows.run(
            f'tools/test.py and tools/dist_test.sh ({_nproc(args)} process(es)) '
            'give the same numbers',
            lambda: (
                test_tools_row(args, dist['checkpoint'], work_dir)
                if dist and dist['ok']
                else (False, dict(skipped='dist_train failed'))
            ),
            how='robust/* of --out equal between the two',
        )
    return rows.rows, dist


def nf_vs_bn(models):
    """NF / BN cost of each row both models have."""
    nf, bn = models.get('NF-ResNet-50', {}), models.get('BN ResNet-50', {})
    return {
        label: round(bn[label]['images_per_s'] / row['images_per_s'], 3)
        for label, row in nf.items()
        if label in bn
    }


def main(argv=None):
    args = parse_args(argv)
    global _STARTED
    _STARTED = time.perf_counter()
    from mmengine.registry import init_default_scope

    import nofrost_mm  # noqa: F401  (registers the plug-in)

    init_default_scope('mmpretrain')
    started = _STARTED
    device_name = (
        torch.cuda.get_device_name()
        if args.device == 'cuda'
        else f'CPU ({platform.machine()}, {os.cpu_count()} cores)'
    )
    print(
        f'gpu_check on {device_name} ({torch.cuda.device_count()} GPU(s)): '
        f'correctness rows, then batch {args.batch_size}x3x{args.img_size}x'
        f'{args.img_size}, PGD-{args.steps} eps {args.eps}/255, '
        f'{args.iters} timed iterations per row{" (TINY)" if args.tiny else ""}',
        flush=True,
    )
    results = dict(
        device=device_name,
        gpus=torch.cuda.device_count(),
        torch=torch.__version__,
        cuda=torch.version.cuda,
        tiny=args.tiny,
        batch_size=args.batch_size,
        img_size=args.img_size,
        pgd_steps=args.steps,
        eps=args.eps,
        budget_s=None if args.budget_s == float('inf') else args.budget_s,
        models={},
        skipped=[],
    )
    print('correctness:', flush=True)
    with tempfile.TemporaryDirectory() as work_dir:
        results['correctness'], dist = correctness(args, work_dir)
    if dist is not None:
        results['dist_train'] = dist
    print('throughput and memory:', flush=True)
    if args.device == 'cuda':
        # training's setting (env_cfg.cudnn_benchmark); the AutoAttack rows
        # switch it off as the robust test loops do
        torch.backends.cudnn.benchmark = True
    for name, backbone in model_cfgs(args):
        if over_budget(args):
            results['skipped'].append(f'{name}: over --budget-s')
            continue
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
    results['nf_vs_bn_cost'] = nf_vs_bn(results['models'])
    results['seconds'] = time.perf_counter() - started
    counts = {}
    for row in results['correctness']:
        counts[row['status']] = counts.get(row['status'], 0) + 1
    results['summary'] = counts
    print('\n| correctness | status | seconds |\n| --- | --- | --- |')
    for row in results['correctness']:
        print(f'| {row["name"]} | {row["status"]} | {row["seconds"]:.1f} |')
    print('\n' + table(results))
    if results['nf_vs_bn_cost']:
        print(
            '\nNF / BN cost: '
            + ', '.join(f'{k} {v:.2f}' for k, v in results['nf_vs_bn_cost'].items())
        )
    if 'dist_train' in results:
        d = results['dist_train']
        print(
            f'\ntools/dist_train.sh, {d["nproc"]} process(es) ({d["backend"]}): '
            f'{"OK" if d["ok"] else "FAILED"} in {d["seconds"]:.1f} s; channels-last '
            f'weights under DDP: {d["channels_last_kept"]}'
        )
    needs_gpu = [r['name'] for r in results['correctness'] if r['status'] == 'NEEDS GPU']
    if needs_gpu:
        print('\nrows that need a GPU (not run here): ' + '; '.join(needs_gpu))
    print(f'\n{counts}; total {results["seconds"]:.0f} s; wrote {args.out}')
    with open(args.out, 'w') as f:
        json.dump(results, f, indent=2, default=str)
    failed = [r for r in results['correctness'] if r['status'] in ('FAIL', 'ERROR')]
    for r in failed:
        print(f'{r["status"]}: {r["name"]}: {r.get("error") or r["details"]}', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
