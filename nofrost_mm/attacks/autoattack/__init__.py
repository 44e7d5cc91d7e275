# AutoAttack (Croce & Hein, 2020) and its members, one file each: importing them registers them
from .apgd import APGDAttack
from .autoattack import AutoAttack
from .batch_norm_folding import fold_batch_norm
from .fab import FABAttack
from .square import SquareAttack

__all__ = ['APGDAttack', 'FABAttack', 'SquareAttack', 'AutoAttack', 'fold_batch_norm']
