# components of this folder are imported here (one file each), which registers them
from .adversarial_training_hook import AdversarialTrainingHook  # noqa: F401
from .catastrophic_overfitting_hook import CatastrophicOverfittingHook  # noqa: F401
from .class_subset_hook import ClassSubsetHook  # noqa: F401
from .divergence_guard_hook import DivergenceGuardHook  # noqa: F401
