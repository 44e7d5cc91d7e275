"""nofrost_mm: NoFrost (normalizer-free adversarial training) for mmpretrain.

Importing the package checks the OpenMMLab versions, makes mmengine checkpoints
loadable under torch's weights-only default, and registers every component in
mmpretrain's registries (configs load it with ``custom_imports``).
"""

from .utils.version_check import check_dependency_versions
from .version import __version__

check_dependency_versions()

from .utils.checkpoint_safe_globals import register_checkpoint_safe_globals  # noqa: E402

register_checkpoint_safe_globals()

from . import attacks, datasets, engine, evaluation, models  # noqa: E402,F401,I001  (registers components)

__all__ = ['__version__']
