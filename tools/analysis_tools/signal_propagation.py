"""Signal propagation plots (Brock, De, Smith 2021) for classifier configs.

For every residual block, at initialisation and on N(0, 1) inputs, records
the average channel squared mean and the average channel variance of the
block output, and the average channel variance of the residual branch (just
before it joins the skip path). A config with BatchNorm is drawn three
times: as built (BN), with the BNs simply deleted (naive), and converted by
``convert_to_normfree`` (NF); a normalizer-free config is drawn as built.

Each normalizer-free model is drawn with its own prediction (dashed, same
colour): Brock et al.'s rule with that model's ``alpha``, ``beta`` and
last-conv gains. A block adds ``alpha**2 * beta**2 * Var(h)`` (its branch's
scaled WS convs keep the variance of their scaled input); a transition
block's shortcut passes ``beta**2 * Var(h)``, times the variance ratio of
its average pool if it has one. The rule does not cover what the stem
delivers, nor how much a 2x2 average pool keeps (1/4 of a spatially white
signal, all of a constant one), so the prediction takes three things from
the measurement: the variance entering the first block, how much of it the
blocks' activation passes (``gamma**2 * Var(act(h)) / Var(h)``: 1 for a
zero-mean stream, about 2.9 after timm's stem max pool, whose output is
mostly positive; the first transition's convs reset it) and each pool's
ratio. It ignores zero padding and the channel-common part a
weight-standardized conv removes, so the measured curve lies a little
below it: 0.79-0.97 of it at 128 px for NF-ResNet-26 and a converted
ResNet-50, closer at 224 px. ``--json`` also has ``beta_expected_var``, the
input variance each ``beta`` was set for (a unit-variance stem and
variance-preserving shortcuts assumed).

Usage:
    python tools/analysis_tools/signal_propagation.py CONFIG [CONFIG ...] \
        --out spp.png [--json spp.json] [--img-size 224] [--batch-size 8]
"""

import argparse
import copy
import json
import logging
import os.path as osp

import torch
import torch.nn as nn
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from torch.nn.modules.batchnorm import _BatchNorm


def parse_args():
    parser = argparse.ArgumentParser(description='Signal propagation plots of classifier backbones')
    parser.add_argument('configs', nargs='+', help='model config files')
    parser.add_argument('--out', required=True, help='output PNG file')
    parser.add_argument('--json', help='also write the numbers here')
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--zero-init',
        action='store_true',
        help='keep zero-initialised last gains / BN scales (SkipInit); by '
        'default they are set to 1 so the branches show, as in the paper',
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of every config, e.g. model.backbone.depth=50',
    )
    args = parser.parse_args()
    if args.img_size < 32 or args.batch_size < 2:
        parser.error(
            '--img-size must be >= 32 and --batch-size >= 2 (variances need several samples)'
        )
    return args


def _residual_blocks(model):
    from mmpretrain.models.backbones.resnet import BasicBlock, Bottleneck

    from nofrost_mm.models.backbones.nf_resnet import NormFreeBlock

    return [m for m in model.modules() if isinstance(m, (NormFreeBlock, BasicBlock, Bottleneck))]


def _branch_end(block):
    """Module whose output is the residual branch of an mmpretrain block."""
    from mmpretrain.models.backbones.resnet import Bottleneck

    if getattr(block, 'se_layer', None) is not None:
        return block.se_layer
    return block.norm3 if isinstance(block, Bottleneck) else block.norm2


def _channel_stats(x):
    x = x.detach().double().transpose(0, 1).flatten(1)  # (C, N*H*W)
    mean = x.mean(1)
    return float((mean**2).mean()), float(x.var(1, unbiased=False).mean())


def predicted_variances(blocks, input_var, act_gain, pool_ratios):
    """Output variance of each NF block by Brock et al.'s rule.

    Block ``i`` computes ``shortcut + alpha * f(act(h) * beta)``. Its
    branch's scaled WS convs (the activation's gain folded in) pass
    ``beta**2 * Var(h)``, times the last conv's mean squared gain; its
    shortcut is ``h`` or, in a transition block, a conv of the same scaled
    input (``beta**2 * Var(h)``) after an optional average pool. That holds
    for a zero-mean stream; up to the first transition, whose convs reset
    it, the stream carries what the stem left, so its activation passes
    ``act_gain`` times that.

    Args:
        blocks (list[NormFreeBlock]): The blocks, in forward order.
        input_var (float): Variance entering the first block.
        act_gain (float): ``gamma**2 * Var(act(h)) / Var(h)`` of the first
            block's input ``h``: 1 for a zero-mean Gaussian stream, more for
            a mostly positive one (a stem's max pool keeps the largest of 9
            values).
        pool_ratios (list[float]): Per block, the output/input variance
            ratio of the shortcut's average pool (1.0 without one).

    Returns:
        list[float]: Predicted output variance of each block.
    """
    gains = torch.stack([b.last_conv.gain.detach().double().pow(2).mean() for b in blocks]).tolist()
    var, out = input_var, []
    for block, gain2, pool in zip(blocks, gains, pool_ratios):
        scaled = block.beta**2 * act_gain * var
        if block.downsample is None:
            shortcut = var
        else:
            shortcut, act_gain = pool * scaled, 1.0
        var = shortcut + block.alpha**2 * gain2 * scaled
        out.append(var)
    return out


@torch.no_grad()
def measure(backbone, inputs):
    """Per-block squared mean, variance and residual-branch variance.

    Args:
        backbone (nn.Module): Backbone in eval mode.
        inputs (Tensor): Input batch.

    Returns:
        dict: Lists ``sq_mean``, ``var``, ``branch_var``; for a
        normalizer-free backbone (``normfree``) also ``predicted_var`` (see
        :func:`predicted_variances`), ``beta_expected_var`` (the input
        variance each block's ``beta`` assumes), ``act_gain`` and
        ``pool_ratio`` (what the prediction measured), else None for those;
        ``input_var``, the variance entering the first block.
    """
    from nofrost_mm.models.backbones.nf_resnet import NormFreeBlock

    blocks = _residual_blocks(backbone)
    if not blocks:
        raise ValueError(
            f'{type(backbone).__name__} has no residual blocks '
            '(mmpretrain BasicBlock/Bottleneck or NormFreeBlock)'
        )
    normfree = all(isinstance(b, NormFreeBlock) for b in blocks)
    stats = {k: [None] * len(blocks) for k in ('sq_mean', 'var', 'branch_var')}
    pool_ratio = [1.0] * len(blocks)
    first = {}
    handles = []

    def on_first_input(block, args):
        first['var'] = _channel_stats(args[0])[1]
        if normfree:
            first['act_gain'] = (
                block.conv1.gamma**2 * _channel_stats(block.act(args[0]))[1] / first['var']
            )

    handles.append(blocks[0].register_forward_pre_hook(on_first_input))
    for i, block in enumerate(blocks):

        def on_output(_, args, out, i=i, block=block):
            stats['sq_mean'][i], stats['var'][i] = _channel_stats(out)
            if isinstance(block, NormFreeBlock):
                stats['branch_var'][i] = _channel_stats(block.residual_branch(args[0]))[1]

        handles.append(block.register_forward_hook(on_output))
        if not isinstance(block, NormFreeBlock):

            def on_branch(_, __, out, i=i):
                stats['branch_var'][i] = _channel_stats(out)[1]

            handles.append(_branch_end(block).register_forward_hook(on_branch))
        elif block.downsample is not None:
            for pool in block.downsample.modules():
                if isinstance(pool, nn.AvgPool2d):

                    def on_pool(_, args, out, i=i):
                        pool_ratio[i] = _channel_stats(out)[1] / _channel_stats(args[0])[1]

                    handles.append(pool.register_forward_hook(on_pool))
    try:
        backbone(inputs)
    finally:
        for h in handles:
            h.remove()
    stats['normfree'] = normfree
    stats['input_var'] = first['var']
    if normfree:
        stats['act_gain'] = first['act_gain']
        stats['pool_ratio'] = pool_ratio
        stats['predicted_var'] = predicted_variances(
            blocks, first['var'], first['act_gain'], pool_ratio
        )
        stats['beta_expected_var'] = [b.beta**-2 for b in blocks]
    else:
        for key in ('act_gain', 'pool_ratio', 'predicted_var', 'beta_expected_var'):
            stats[key] = None
    return stats


def _set_skipinit_to_one(backbone):
    from mmpretrain.models.backbones.resnet import BasicBlock, Bottleneck

    from nofrost_mm.models.backbones.nf_resnet import NormFreeBlock

    for m in backbone.modules():
        if isinstance(m, NormFreeBlock):
            nn.init.ones_(m.last_conv.gain)
        elif isinstance(m, (BasicBlock, Bottleneck)):
            last_norm = m.norm3 if isinstance(m, Bottleneck) else m.norm2
            if isinstance(last_norm, _BatchNorm):
                nn.init.ones_(last_norm.weight)


def _remove_bn(module):
    for name, child in module.named_children():
        if isinstance(child, _BatchNorm):
            setattr(module, name, nn.Identity())
        else:
            _remove_bn(child)
    return module


def build_variants(cfg, zero_init=False):
    """Backbones to compare: BN / naive / NF (ResNet family) for a BN
    config, else the model itself."""
    from mmpretrain.registry import MODELS

    from nofrost_mm.models.backbones import convert_to_normfree
    from nofrost_mm.models.backbones.norm_free_converter import RESNET_FAMILY

    model_cfg = cfg.model.get('backbone', cfg.model)
    backbone = MODELS.build(model_cfg)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # init_weights logs every parameter
    try:
        backbone.init_weights()
    finally:
        logger.setLevel(level)
    if not zero_init:
        _set_skipinit_to_one(backbone)
    if not any(isinstance(m, _BatchNorm) for m in backbone.modules()):
        return {'': backbone}
    variants = {'BN': backbone, 'naive': _remove_bn(copy.deepcopy(backbone))}
    if type(backbone) in RESNET_FAMILY:  # what the converter converts
        variants['NF'] = convert_to_normfree(copy.deepcopy(backbone), zero_init_last=zero_init)
    return variants


def figure(results):
    """The three panels; each NF model's prediction dashed in its colour."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    titles = dict(
        sq_mean='average channel squared mean',
        var='average channel variance',
        branch_var='residual branch variance',
    )
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for ax, (key, title) in zip(axes, titles.items()):
        for k, (label, stats) in enumerate(results.items()):
            color = f'C{k % 10}'
            values = [max(v, 1e-12) for v in stats[key]]
            ax.plot(range(1, len(values) + 1), values, marker='.', color=color, label=label)
            if key == 'var' and stats['predicted_var'] is not None:
                # each model's own prediction, in its colour
                ax.plot(
                    range(1, len(values) + 1),
                    stats['predicted_var'],
                    '--',
                    color=color,
                    lw=1,
                    label=f'{label}: NF prediction',
                )
        ax.set_yscale('log')
        ax.set_xlabel('residual block')
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.suptitle(
        'Signal propagation at initialisation, N(0, 1) inputs (dashed: each NF model\'s prediction)'
    )
    fig.tight_layout()
    return fig


def plot(results, out):
    import matplotlib.pyplot as plt

    fig = figure(results)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def prediction_summary(stats):
    """One line on how the measured variances follow the NF prediction."""
    if stats['predicted_var'] is None:
        return 'not normalizer-free: no NF prediction'
    ratios = [v / p for v, p in zip(stats['var'], stats['predicted_var'])]
    return (
        f'measured / NF prediction {min(ratios):.3g}-{max(ratios):.3g} '
        f'(first block input: variance {stats["input_var"]:.3g}, '
        f'activation gain {stats["act_gain"]:.3g})'
    )


def main():
    args = parse_args()
    import nofrost_mm  # noqa: F401  (registers the plug-in)

    init_default_scope('mmpretrain')
    results = {}
    for path in args.configs:
        cfg = Config.fromfile(path)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        name = osp.splitext(osp.basename(path))[0]
        torch.manual_seed(args.seed)
        inputs = torch.randn(args.batch_size, 3, args.img_size, args.img_size)
        for variant, backbone in build_variants(cfg, args.zero_init).items():
            label = f'{name} {variant}'.strip()
            # BN uses batch statistics, as in training; nothing else random
            backbone.eval()  # (ResNet.train() returns None: no chaining)
            for m in backbone.modules():
                if isinstance(m, _BatchNorm):
                    m.train()
            stats = results[label] = measure(backbone, inputs)
            print(
                f'{label}: {len(stats["var"])} blocks, final variance '
                f'{stats["var"][-1]:.4g}, {prediction_summary(stats)}'
            )
    plot(results, args.out)
    print(f'plot saved to {args.out}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)


if __name__ == '__main__':
    main()
