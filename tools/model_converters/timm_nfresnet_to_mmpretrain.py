"""Convert a timm NF-ResNet state dict (``nf_resnet26/50/101``) to mmpretrain.

The official NoFrost checkpoints are timm ``nf_resnet50`` state dicts; the
result loads into ``configs/_base_/models/nf-resnet50.py`` (``NFResNet`` +
``DropoutLinearClsHead``) with no missing or unexpected keys.

Usage:
    python tools/model_converters/timm_nfresnet_to_mmpretrain.py SRC DST

SRC may be a bare state dict, ``{'model': ...}``, ``{'state_dict': ...}``,
with or without DDP ``module.`` prefixes. DST is ``{'state_dict': ...}`` with
``backbone.``/``head.`` keys (mmengine's ``load_from`` format).
"""

import argparse
import re
from collections import OrderedDict

import torch

# timm name -> mmpretrain name; conv params are weight, bias and gain
_RULES = [
    (re.compile(r'^stem\.conv\.(weight|bias|gain)$'), r'backbone.conv1.\1'),
    (
        re.compile(
            r'^stages\.(\d+)\.(\d+)\.(conv[123]|downsample\.conv)\.'
            r'(weight|bias|gain)$'
        ),
        None,
    ),
    (re.compile(r'^head\.fc\.(weight|bias)$'), r'head.fc.\1'),
]


def _rename(key: str):
    stem_rule, stage_rule, head_rule = _RULES
    m = stage_rule[0].match(key)
    if m:
        stage, block, module, param = m.groups()
        return f'backbone.layer{int(stage) + 1}.{block}.{module}.{param}'
    for pattern, repl in (stem_rule, head_rule):
        if pattern.match(key):
            return pattern.sub(repl, key)
    return None


def extract_state_dict(checkpoint) -> OrderedDict:
    """Return the state dict inside a checkpoint, without ``module.``.

    Args:
        checkpoint (dict): A bare state dict or a dict holding one under
            ``'model'`` or ``'state_dict'``.

    Returns:
        OrderedDict: The state dict.
    """
    if not isinstance(checkpoint, dict):
        raise TypeError(f'expected a dict checkpoint, got {type(checkpoint)}')
    for key in ('state_dict', 'model'):
        if key in checkpoint and isinstance(checkpoint[key], dict):
            checkpoint = checkpoint[key]
            break
    if not all(torch.is_tensor(v) for v in checkpoint.values()):
        raise ValueError(
            'checkpoint is neither a state dict nor a dict holding one under '
            f"'state_dict' or 'model'; top-level keys: {list(checkpoint)[:10]}"
        )
    return OrderedDict(
        (k[len('module.') :] if k.startswith('module.') else k, v) for k, v in checkpoint.items()
    )


def convert_timm_nfresnet(state_dict: dict) -> OrderedDict:
    """Rename a timm NF-ResNet state dict to ``NFResNet`` + head keys.

    Args:
        state_dict (dict): timm ``nf_resnet26/50/101`` state dict.

    Returns:
        OrderedDict: State dict with ``backbone.`` and ``head.`` keys.

    Raises:
        KeyError: Listing every key that has no mmpretrain counterpart
            (e.g. attention layers of ``nf_seresnet``).
    """
    converted, unknown = OrderedDict(), []
    for key, value in state_dict.items():
        new_key = _rename(key)
        if new_key is None:
            unknown.append(key)
        else:
            converted[new_key] = value
    if unknown:
        raise KeyError(
            f'{len(unknown)} keys of the source checkpoint have no '
            f'NFResNet counterpart (is it a timm nf_resnet26/50/101?): '
            f'{unknown}'
        )
    return converted


def parse_args():
    parser = argparse.ArgumentParser(
        description='Convert a timm NF-ResNet checkpoint to mmpretrain'
    )
    parser.add_argument('src', help='timm checkpoint (.pth)')
    parser.add_argument('dst', help='output mmpretrain checkpoint (.pth)')
    return parser.parse_args()


def main():
    args = parse_args()
    # the plug-in's checked reader: weights-only (no untrusted pickle), and a
    # truncated or damaged download named as such
    from nofrost_mm.utils import read_checkpoint

    checkpoint = read_checkpoint(args.src)
    state_dict = convert_timm_nfresnet(extract_state_dict(checkpoint))
    torch.save({'state_dict': state_dict}, args.dst)
    print(f'converted {len(state_dict)} tensors: {args.src} -> {args.dst}')


if __name__ == '__main__':
    main()
