from .checkpoint_safe_globals import register_checkpoint_safe_globals
from .version_check import check_dependency_versions

__all__ = ['check_dependency_versions', 'register_checkpoint_safe_globals']
