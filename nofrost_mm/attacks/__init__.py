# components of this folder are imported here (one file each), which registers them
from .attack_context import attack_context, model_state
from .autoattack import APGDAttack, AutoAttack, FABAttack, SquareAttack
from .builder import (
    attack_name,
    attack_settings,
    build_attack,
    build_attacks,
    format_settings,
    parse_attack,
    takes_eps,
    takes_sample_keys,
    with_eps,
)
from .cw_linf import CWLinf
from .mixed_precision import (
    GradScaledClassifier,
    OverflowCounter,
    PrecisionSafeClassifier,
    autocast_dtype,
    fp32_logits,
    fp32_predict,
    precision_name,
    precision_safe,
)
from .normalized_classifier import NormalizedClassifier
from .pgd import PGDAttack, pgd_step_size
from .single_step import FGSMRS, NFGSM
from .torchattacks_adapter import TORCHATTACKS_ADAPTERS, TorchAttack

__all__ = [
    'APGDAttack',
    'AutoAttack',
    'CWLinf',
    'FABAttack',
    'FGSMRS',
    'GradScaledClassifier',
    'NFGSM',
    'NormalizedClassifier',
    'OverflowCounter',
    'PGDAttack',
    'PrecisionSafeClassifier',
    'SquareAttack',
    'TORCHATTACKS_ADAPTERS',
    'TorchAttack',
    'attack_context',
    'attack_name',
    'attack_settings',
    'autocast_dtype',
    'build_attack',
    'build_attacks',
    'format_settings',
    'fp32_logits',
    'fp32_predict',
    'model_state',
    'parse_attack',
    'pgd_step_size',
    'precision_name',
    'precision_safe',
    'takes_eps',
    'takes_sample_keys',
    'with_eps',
]
