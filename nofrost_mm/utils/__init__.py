from .checkpoint_reader import (
    CheckpointLoadError,
    latest_complete_checkpoint,
    load_into_model,
    read_checkpoint,
)
from .checkpoint_safe_globals import register_checkpoint_safe_globals
from .config_checks import (
    check_bool,
    check_choice,
    check_keys,
    check_number,
    check_plugin_component_keys,
)
from .cudnn import cudnn_autotuning
from .device_scalars import DeviceHistoryBuffer, update_device_scalar
from .device_timer import DeviceTimer
from .distributed import shutdown_distributed
from .log_once import LogOnce
from .memory_format import model_memory_format
from .rank_wait import wait_for_ranks
from .rng_state import get_rng_state, set_rng_state
from .sample_random import (
    fold_keys,
    random_keys,
    sample_bits,
    sample_keys,
    sample_normal,
    sample_randint,
    sample_uniform,
)
from .training_eps import follow_training_eps, training_eps
from .version_check import check_dependency_versions

__all__ = [
    'CheckpointLoadError',
    'read_checkpoint',
    'latest_complete_checkpoint',
    'load_into_model',
    'LogOnce',
    'shutdown_distributed',
    'model_memory_format',
    'training_eps',
    'follow_training_eps',
    'check_dependency_versions',
    'register_checkpoint_safe_globals',
    'check_bool',
    'check_choice',
    'check_keys',
    'check_number',
    'check_plugin_component_keys',
    'get_rng_state',
    'set_rng_state',
    'fold_keys',
    'random_keys',
    'sample_bits',
    'sample_keys',
    'sample_normal',
    'sample_randint',
    'sample_uniform',
    'DeviceHistoryBuffer',
    'DeviceTimer',
    'update_device_scalar',
    'wait_for_ranks',
    'cudnn_autotuning',
]
