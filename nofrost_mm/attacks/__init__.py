# components of this folder are imported here (one file each), which registers them
from .attack_context import attack_context, frozen_running_stats
from .builder import (attack_name, attack_settings, build_attack, build_attacks,
                      format_settings, parse_attack, takes_eps, takes_sample_keys,
                      with_eps)
from .normalized_classifier import NormalizedClassifier
from .pgd import PGDAttack, pgd_step_size
from .cw_linf import CWLinf
from .single_step import FGSMRS, NFGSM
from .mixed_precision import (GradScaledClassifier, OverflowCounter,
                              PrecisionSafeClassifier, autocast_dtype, fp32_logits,
                              fp32_predict, precision_name, precision_safe)
from .torchattacks_adapter import TORCHATTACKS_ADAPTERS, TorchAttack
from .apgd import APGDAttack
from .fab import FABAttack
from .square import SquareAttack
from .autoattack import AutoAttack

__all__ = ['PGDAttack', 'NormalizedClassifier', 'attack_context', 'build_attack',
           'attack_name', 'build_attacks', 'parse_attack', 'takes_eps', 'takes_sample_keys',
           'with_eps', 'attack_settings', 'format_settings', 'pgd_step_size',
           'frozen_running_stats']
__all__ += ['CWLinf', 'TorchAttack', 'TORCHATTACKS_ADAPTERS']
__all__ += ['FGSMRS', 'NFGSM', 'GradScaledClassifier', 'autocast_dtype',
            'PrecisionSafeClassifier', 'OverflowCounter', 'fp32_logits', 'fp32_predict',
            'precision_name', 'precision_safe']
__all__ += ['APGDAttack', 'FABAttack', 'SquareAttack', 'AutoAttack']
