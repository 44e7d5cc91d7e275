"""Rerun the bad inputs of issue 34 on the tiny demo configs, as a user types them.

Each case is a command line of ``tools/`` (train, test, signal propagation) with
one bad input: an eps on the [0, 1] scale (in a config, in ``--cfg-options``, in
``--attacks``), eps 300, a non-numeric eps, a malformed ``--attacks`` literal, an
unknown attack name, typos in the plug-in's keys, damaged checkpoints (missing,
truncated, random bytes, flipped bytes, another architecture), a missing data
folder (a plug-in config and mmpretrain's own), ``--resume`` on a missing file,
an empty folder and a finished run, a reused ``--work-dir``, ``--num-samples``
-5, 0 and 1000000, ``--attacks none PGD``, ``--out-item`` without ``--out``, the
README's ``NormFreeConverter`` snippet on a stock config, and SIGTERM during a
test. For each it prints the command, the exit code, the seconds it took and the
last meaningful line of its output (the error, a warning, or the last line), as
a Markdown table, also written to ``--out``.

Everything is written under a new timestamped folder of ``--work-dir``; the
set-up trains the demo config for one epoch on 32 images (a few seconds).

Usage:
    python tools/misc/bad_inputs.py [--work-dir work_dirs/bad_inputs]
        [--out work_dirs/bad_inputs.md] [--only SUBSTRING ...]
"""

import argparse
import os
import os.path as osp
import random
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import threading
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = 'configs/demo/resnet18-w16_1xb64_digits.py'
PGDAT = 'configs/demo/resnet18-w16_1xb64_digits_pgdat.py'
NF_PGDAT = 'configs/demo/nf-resnet18-w16_1xb64_digits_pgdat.py'
MNIST = 'configs/mnist/fast-at-cnn_1xb100_mnist_fgsmrs.py'
# one epoch of 32 images, 16 validation images: a few seconds when an input
# is (wrongly) accepted
TINY = [
    'train_cfg.max_epochs=1',
    'train_dataloader.dataset.indices=32',
    'train_dataloader.batch_size=16',
    'val_dataloader.dataset.indices=16',
]
TIMEOUT_S = 600
# the README's stock MNIST example (the plug-in's keys on lenet5_mnist.py)
STOCK_MNIST = """_base_ = ['mmpretrain::lenet/lenet5_mnist.py']
custom_imports = dict(imports=['nofrost_mm'], allow_failed_imports=False)
runner_type = 'NoFrostRunner'
model = dict(type='AdvImageClassifier', adv_loss_weight=1.0)
data_preprocessor = dict(type='PGDDataPreprocessor', eps=76.5,  # 0.3
                         attack=dict(type='FGSMRS', clip_start=False))
custom_hooks = [dict(type='AdversarialTrainingHook', adv_val_interval=1)]
"""
# lines that end a traceback: "ValueError: ...", "[rank0]: KeyError: ..."
EXCEPTION = re.compile(r'^(\[rank\d+\]:\s*)?([\w.]*(Error|Exception|Exit|Interrupt))(: |$)')
NOTABLE = re.compile(
    r'error|refus|cannot|must|does not|no such|missing|not allowed|'
    r'did you mean|warning|already|interrupt|terminat|\bsignal\b|SIGTERM|resume',
    re.IGNORECASE,
)
# mmengine's log prefix: "12/07 14:04:57 - mmengine - INFO - "
LOG_PREFIX = re.compile(r'^\d\d/\d\d \d\d:\d\d:\d\d - mmengine - (\w+) - ')
# noise that is no message of ours: library warnings (deprecations, pinned
# memory without a GPU), torchrun's failure banner (indented lines, traceback
# frames and warning sources are dropped before)
NOISE = re.compile(r'Warning: |will be deprecated|is deprecated|^={10,}|^-{10,}|^\^+$')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--work-dir',
        default='work_dirs/bad_inputs',
        help='runs go to a new timestamped folder under it',
    )
    parser.add_argument('--out', default='work_dirs/bad_inputs.md', help='the Markdown table')
    parser.add_argument(
        '--only',
        nargs='+',
        metavar='SUBSTRING',
        help='run only the cases whose name contains one of these',
    )
    return parser.parse_args(argv)


def last_meaningful_line(text):
    """The line that says what happened: the last exception line, else the
    last error-like line, else the last line."""
    lines = []
    for raw in text.splitlines():
        if raw[:1].isspace():  # traceback frames, a warning's source line
            continue
        line = LOG_PREFIX.sub(
            lambda m: f'{m.group(1)}: ' if m.group(1) != 'INFO' else '', raw.strip()
        )
        if line and not NOISE.search(line):
            lines.append(line)
    for pattern in (EXCEPTION, NOTABLE):
        found = [line for line in lines if pattern.search(line)]
        if found:
            return found[-1]
    return lines[-1] if lines else ''


def process_options(cwd=REPO):
    """How a case's command runs: in ``cwd``, the repository importable, one
    thread unless set, its output in one stream (the lines in the order they
    were written)."""
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1'))
    return dict(cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run(cmd, cwd=REPO, timeout=TIMEOUT_S):
    """Run a command; (exit code, seconds, stdout + stderr)."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, timeout=timeout, **process_options(cwd))
        rc, out = proc.returncode, proc.stdout
    except subprocess.TimeoutExpired as error:
        rc = 'timeout'
        out = (error.stdout or b'').decode() + f'\n(killed after {timeout} s)'
    return rc, time.perf_counter() - start, out


def run_and_terminate(cmd, started, delay_s=3.0, timeout=TIMEOUT_S):
    """Start a command, SIGTERM it ``delay_s`` after a line matching ``started``."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, bufsize=1, **process_options())
    lines, seen = [], threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if re.search(started, line):
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if seen.wait(timeout) and proc.poll() is None:
        time.sleep(delay_s)
        proc.send_signal(signal.SIGTERM)
        lines.append(f'(bad_inputs.py: SIGTERM sent after {time.perf_counter() - start:.0f} s)\n')
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = 'timeout'
    reader.join(5)
    return rc, time.perf_counter() - start, ''.join(lines)


def shell_words(cmd):
    """The command as a user would type it (dict literals in double quotes)."""
    words = []
    for word in map(str, cmd):
        if "'" in word and not re.search(r'["$`\\!]', word):
            words.append(f'"{word}"')
        else:
            words.append(shlex.quote(word))
    return ' '.join(words)


def readme_converter_snippet():
    """The README's NormFreeConverter example config, as a user copies it."""
    with open(osp.join(REPO, 'README.md')) as f:
        readme = f.read()
    for block in re.findall(r'```python\n(.*?)```', readme, re.DOTALL):
        block = textwrap.dedent(block)
        if 'NormFreeConverter' in block and '_base_' in block:
            return block
    raise SystemExit('README.md has no NormFreeConverter config snippet any more')


def set_up(root):
    """A finished tiny run, checkpoints damaged in each way, the configs."""
    py = sys.executable
    finished = osp.join(root, 'finished')
    rc, seconds, out = run(
        [py, 'tools/train.py', DEMO, '--work-dir', finished, '--cfg-options', *TINY]
    )
    if rc != 0:
        raise SystemExit(f'set-up: training the demo config failed ({rc}):\n{out[-3000:]}')
    print(f'set-up: trained {DEMO} for one epoch on 32 images in {seconds:.0f} s', flush=True)
    good = osp.join(finished, 'epoch_1.pth')
    with open(good, 'rb') as f:
        data = f.read()
    ckpts = osp.join(root, 'checkpoints')
    os.makedirs(ckpts)
    files = dict(good=good, missing=osp.join(ckpts, 'missing.pth'))
    files['truncated'] = osp.join(ckpts, 'truncated.pth')
    with open(files['truncated'], 'wb') as f:
        f.write(data[: len(data) // 2])
    files['random'] = osp.join(ckpts, 'random_bytes.pth')
    with open(files['random'], 'wb') as f:
        f.write(random.Random(0).randbytes(len(data)))
    # 2,000 bytes inverted in the middle of a good checkpoint
    flipped = bytearray(data)
    middle = len(data) // 2
    flipped[middle : middle + 2000] = bytes(b ^ 0xFF for b in flipped[middle : middle + 2000])
    files['flipped'] = osp.join(ckpts, 'flipped_bytes.pth')
    with open(files['flipped'], 'wb') as f:
        f.write(bytes(flipped))
    # the NoFrost model's initial weights: a checkpoint of another architecture
    files['other'] = osp.join(ckpts, 'nf_resnet18_init.pth')
    code = (
        'import torch, nofrost_mm; from mmengine.config import Config; '
        'from mmengine.registry import init_default_scope; '
        'from mmpretrain.registry import MODELS; init_default_scope("mmpretrain"); '
        f'cfg = Config.fromfile("{NF_PGDAT}"); '
        'model = MODELS.build(dict(cfg.model, data_preprocessor=cfg.data_preprocessor)); '
        f'torch.save(dict(meta=dict(epoch=1), state_dict=model.state_dict()), '
        f'"{files["other"]}")'
    )
    rc, _, out = run([py, '-c', code])
    if rc != 0:
        raise SystemExit(f'set-up: building the NF checkpoint failed:\n{out[-3000:]}')
    configs = osp.join(root, 'configs')
    os.makedirs(configs)
    eps01 = osp.join(configs, 'pgdat_eps0.03.py')
    with open(eps01, 'w') as f:
        f.write(
            f"_base_ = ['{osp.join(REPO, PGDAT)}']\n"
            "data_preprocessor = dict(eps=0.03)  # meant 0.03 of [0, 1]\n"
        )
    snippet = osp.join(configs, 'readme_normfree_converter.py')
    with open(snippet, 'w') as f:
        f.write(readme_converter_snippet())
    # a folder with no data/: where a user runs the MNIST configs first
    empty_cwd = osp.join(root, 'fresh_folder')
    os.makedirs(empty_cwd)
    stock = osp.join(empty_cwd, 'lenet5_mnist_fgsmrs.py')
    with open(stock, 'w') as f:
        f.write(STOCK_MNIST)
    empty = osp.join(root, 'empty_folder')
    os.makedirs(empty)
    return dict(
        files,
        finished=finished,
        eps01=eps01,
        snippet=snippet,
        empty_cwd=empty_cwd,
        stock=stock,
        empty=empty,
    )


def cases(root, s):
    """(name, command, cwd) of every bad input; ``s``: the set-up's paths."""
    py = sys.executable
    train = [py, 'tools/train.py']
    test = [py, 'tools/test.py', DEMO, s['good']]

    def fresh(name):  # a new work dir per training case
        return ['--work-dir', osp.join(root, 'runs', name)]

    def tested(name):
        return ['--work-dir', osp.join(root, 'tests', name)]

    def attacked(name, *attacks):  # a test of the good checkpoint with --attacks
        return test + [*tested(name), '--attacks', *attacks]

    def pgdat_option(name, option):  # one bad key=value on the PGD-AT config
        return train + [PGDAT, *fresh(name), '--cfg-options', *TINY, option]

    def damaged(name):  # a test of the set-up's checkpoint ``name``
        return [py, 'tools/test.py', DEMO, s[name], *tested(name), '--attacks', 'none']

    return [
        (
            'eps on the [0, 1] scale in a config',
            train + [s['eps01'], *fresh('eps01_config'), '--cfg-options', *TINY],
        ),
        (
            'eps on the [0, 1] scale in --cfg-options',
            pgdat_option('eps01_options', 'data_preprocessor.eps=0.03'),
        ),
        (
            'eps on the [0, 1] scale in --attacks',
            attacked('eps01_attacks', "{'type': 'PGD', 'eps': 0.03}"),
        ),
        ('eps 300 in --attacks', attacked('eps300_attacks', "{'type': 'PGDAttack', 'eps': 300}")),
        ('eps 300 in --cfg-options', pgdat_option('eps300_options', 'data_preprocessor.eps=300')),
        (
            'non-numeric eps in --cfg-options',
            pgdat_option('eps_text_options', 'data_preprocessor.eps=eight'),
        ),
        (
            'non-numeric eps in --attacks',
            attacked('eps_text_attacks', "{'type': 'PGD', 'eps': 'eight'}"),
        ),
        ('malformed --attacks literal', attacked('malformed', "{'type': 'PGD', 'eps': 8")),
        ('unknown attack name', attacked('unknown', 'PDG')),
        ('typo in a plug-in key (model)', pgdat_option('typo_model', 'model.adv_loss_wieght=0.5')),
        ('typo in a plug-in key (hook)', pgdat_option('typo_hook', 'custom_hooks.0.eps_warmpu=3')),
        (
            'typo in a plug-in key (training attack)',
            pgdat_option('typo_attack', 'data_preprocessor.attack.stpes=3'),
        ),
        ('missing checkpoint', damaged('missing')),
        ('truncated checkpoint', damaged('truncated')),
        ('random-bytes checkpoint', damaged('random')),
        ('flipped-bytes checkpoint', damaged('flipped')),
        ('checkpoint of another architecture', damaged('other')),
        (
            'missing data folder (plug-in config)',
            [
                py,
                osp.join(REPO, 'tools/train.py'),
                osp.join(REPO, MNIST),
                '--work-dir',
                'work_dirs/mnist',
            ],
            s['empty_cwd'],
        ),
        (
            'missing data folder (stock config)',
            [py, osp.join(REPO, 'tools/train.py'), s['stock'], '--work-dir', 'work_dirs/lenet'],
            s['empty_cwd'],
        ),
        (
            '--resume on a missing file',
            train
            + [
                DEMO,
                *fresh('resume_missing'),
                '--resume',
                osp.join(root, 'runs', 'nope', 'epoch_3.pth'),
                '--cfg-options',
                *TINY,
            ],
        ),
        (
            '--resume on an empty folder',
            train + [DEMO, *fresh('resume_folder'), '--resume', s['empty'], '--cfg-options', *TINY],
        ),
        (
            '--resume (auto) in an empty work dir',
            train + [DEMO, '--work-dir', s['empty'], '--resume', '--cfg-options', *TINY],
        ),
        (
            '--resume on a finished run',
            train + [DEMO, '--work-dir', s['finished'], '--resume', '--cfg-options', *TINY],
        ),
        (
            'reused --work-dir',
            train
            + [DEMO, '--work-dir', s['finished'], '--cfg-options', *TINY, 'randomness.seed=1'],
        ),
        ('--num-samples -5', attacked('n-5', 'FGSM') + ['--num-samples', '-5']),
        ('--num-samples 0', attacked('n0', 'FGSM') + ['--num-samples', '0']),
        ('--num-samples 1000000', attacked('n1e6', 'FGSM') + ['--num-samples', '1000000']),
        ('--attacks none PGD', attacked('none_pgd', 'none', 'PGD')),
        ('--out-item without --out', test + [*tested('out_item'), '--out-item', 'metrics']),
        (
            "the README's converter snippet on a stock config (signal_propagation)",
            [
                py,
                'tools/analysis_tools/signal_propagation.py',
                s['snippet'],
                '--out',
                osp.join(root, 'tests', 'converter_spp.png'),
                '--img-size',
                '32',
                '--batch-size',
                '2',
            ],
        ),
        (
            "the README's converter snippet on a stock config (train.py)",
            [py, osp.join(REPO, 'tools/train.py'), s['snippet'], *fresh('converter')],
            s['empty_cwd'],
        ),
    ]


def main(argv=None):
    args = parse_args(argv)
    root = osp.abspath(osp.join(args.work_dir, time.strftime('%Y%m%d_%H%M%S')))
    os.makedirs(root)
    s = set_up(root)
    todo = [c for c in cases(root, s) if not args.only or any(o in c[0] for o in args.only)]
    rows = []

    def record(name, cmd, result):
        rc, seconds, out = result
        shown = shell_words(cmd).replace(sys.executable, 'python').replace(root, '$W')
        shown = shown.replace(REPO + '/', '')
        line = last_meaningful_line(out).replace(root, '$W').replace(REPO + '/', '')
        rows.append((name, shown, rc, seconds, line))
        print(
            f'[{len(rows)}] {name}: rc {rc}, {seconds:.1f} s\n    {shown}\n    {line}', flush=True
        )
        with open(osp.join(root, f'case{len(rows):02d}.log'), 'w') as f:
            f.write(f'$ {shown}\n{out}')

    for name, cmd, *cwd in todo:
        record(name, cmd, run(cmd, cwd=cwd[0] if cwd else REPO))
    if not args.only or any(o in 'SIGTERM during a test' for o in args.only):
        # a long attack, terminated once the test loop shows progress
        cmd = [
            sys.executable,
            'tools/test.py',
            DEMO,
            s['good'],
            '--work-dir',
            osp.join(root, 'tests', 'sigterm'),
            '--attacks',
            "{'type': 'PGDAttack', 'eps': 8, 'steps': 2000}",
        ]
        record(
            'SIGTERM during a test',
            cmd,
            run_and_terminate(cmd, started=r'[Ll]oads? checkpoint', delay_s=5.0),
        )

    def cell(value):
        return str(value).replace('|', '\\|').replace('\n', ' ')

    table = [
        '| bad input | command | rc | s | last meaningful line |',
        '| --- | --- | --- | --- | --- |',
    ]
    table += [
        f'| {cell(n)} | `{cell(c)}` | {rc} | {sec:.1f} | {cell(line)} |'
        for n, c, rc, sec, line in rows
    ]
    text = (
        f'# Bad inputs ({time.strftime("%Y-%m-%d %H:%M")}, commit '
        f'{git_head()}; $W = {root})\n\n' + '\n'.join(table) + '\n'
    )
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        f.write(text)
    print('\n' + text)
    print(f'wrote {args.out}; every case\'s whole output: {root}/case*.log')


def git_head():
    try:
        return (
            subprocess.run(
                ['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO, capture_output=True, text=True
            ).stdout.strip()
            or '?'
        )
    except OSError:
        return '?'


if __name__ == '__main__':
    main()
