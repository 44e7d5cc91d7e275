"""Signal propagation plots (Brock, De, Smith 2021) for classifier configs.

For every residual block, at initialisation and on N(0, 1) inputs, records
the average channel squared mean and the average channel variance of the
block output, and the average channel variance of the residual branch (just
before it joins the skip path). A config with BatchNorm is drawn three
times: as built (BN), with the BNs simply deleted (naive), and converted by
``convert_to_normfree`` (NF); a normalizer-free config is drawn as built.
``--json`` also writes the numbers, with the variance each block should have
according to the NF ``beta``/``alpha`` bookkeeping.

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
    parser = argparse.ArgumentParser(
        description='Signal propagation plots of classifier backbones')
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
        'default they are set to 1 so the branches show, as in the paper')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of every config, e.g. model.backbone.depth=50')
    args = parser.parse_args()
    if args.img_size < 32 or args.batch_size < 2:
        parser.error('--img-size must be >= 32 and --batch-size >= 2 '
                     '(variances need several samples)')
    return args


def _residual_blocks(model):
    from mmpretrain.models.backbones.resnet import BasicBlock, Bottleneck

    from nofrost_mm.models.backbones.nf_resnet import NormFreeBlock
    return [
        m for m in model.modules()
        if isinstance(m, (NormFreeBlock, BasicBlock, Bottleneck))
    ]


def _branch_end(block):
    """Module whose output is the residual branch of an mmpretrain block."""
    from mmpretrain.models.backbones.resnet import Bottleneck
    if getattr(block, 'se_layer', None) is not None:
        return block.se_layer
    return block.norm3 if isinstance(block, Bottleneck) else block.norm2


def predicted_variances(blocks, alpha=0.2):
    """Expected output variance of each block under the NF bookkeeping."""
    from nofrost_mm.models.backbones.nf_resnet import nf_block_scales
    expected, out = 1., []
    for block in blocks:
        _, expected = nf_block_scales(expected, alpha, block.downsample
                                      is not None)
        out.append(expected)
    return out


def _channel_stats(x):
    x = x.detach().double().transpose(0, 1).flatten(1)  # (C, N*H*W)
    mean = x.mean(1)
    return float((mean**2).mean()), float(x.var(1, unbiased=False).mean())


@torch.no_grad()
def measure(backbone, inputs):
    """Per-block squared mean, variance and residual-branch variance.

    Args:
        backbone (nn.Module): Backbone in eval mode.
        inputs (Tensor): Input batch.

    Returns:
        dict: Lists ``sq_mean``, ``var``, ``branch_var``, ``predicted_var``.
    """
    from nofrost_mm.models.backbones.nf_resnet import NormFreeBlock
    blocks = _residual_blocks(backbone)
    if not blocks:
        raise ValueError(f'{type(backbone).__name__} has no residual blocks '
                         '(mmpretrain BasicBlock/Bottleneck or NormFreeBlock)')
    stats = {k: [None] * len(blocks) for k in ('sq_mean', 'var', 'branch_var')}
    handles = []
    for i, block in enumerate(blocks):

        def on_output(_, args, out, i=i, block=block):
            stats['sq_mean'][i], stats['var'][i] = _channel_stats(out)
            if isinstance(block, NormFreeBlock):
                stats['branch_var'][i] = _channel_stats(
                    block.residual_branch(args[0]))[1]

        handles.append(block.register_forward_hook(on_output))
        if not isinstance(block, NormFreeBlock):

            def on_branch(_, __, out, i=i):
                stats['branch_var'][i] = _channel_stats(out)[1]

            handles.append(_branch_end(block).register_forward_hook(on_branch))
    try:
        backbone(inputs)
    finally:
        for h in handles:
            h.remove()
    stats['predicted_var'] = predicted_variances(blocks)
    stats['normfree'] = all(isinstance(b, NormFreeBlock) for b in blocks)
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
    """Backbones to compare: BN / naive / NF for a BN config, else itself."""
    from mmpretrain.registry import MODELS

    from nofrost_mm.models.backbones import convert_to_normfree
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
    naive = _remove_bn(copy.deepcopy(backbone))
    nf = convert_to_normfree(
        copy.deepcopy(backbone), zero_init_last=zero_init)
    return {'BN': backbone, 'naive': naive, 'NF': nf}


def plot(results, out):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    titles = dict(
        sq_mean='average channel squared mean',
        var='average channel variance',
        branch_var='residual branch variance')
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for ax, (key, title) in zip(axes, titles.items()):
        for label, stats in results.items():
            values = [max(v, 1e-12) for v in stats[key]]
            ax.plot(range(1, len(values) + 1), values, marker='.',
                    label=label)
        if key == 'var':
            for stats in results.values():
                if stats['normfree']:
                    ax.plot(
                        range(1, len(stats['predicted_var']) + 1),
                        stats['predicted_var'],
                        'k--',
                        lw=1,
                        label='NF prediction (beta)')
                    break
        ax.set_yscale('log')
        ax.set_xlabel('residual block')
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle('Signal propagation at initialisation, N(0, 1) inputs')
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


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
            results[label] = measure(backbone, inputs)
            worst = max(
                max(v / p, p / v) for v, p in zip(results[label]['var'],
                                                  results[label]
                                                  ['predicted_var']))
            print(f'{label}: {len(results[label]["var"])} blocks, final '
                  f'variance {results[label]["var"][-1]:.4g}, worst ratio to '
                  f'the NF prediction {worst:.3g}')
    plot(results, args.out)
    print(f'plot saved to {args.out}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)


if __name__ == '__main__':
    main()
