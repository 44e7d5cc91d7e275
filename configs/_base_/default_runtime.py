# mmpretrain's default runtime, plus what every nofrost_mm config needs.
# registers the plug-in's components (works with mmpretrain's own tools too)
custom_imports = dict(imports=['nofrost_mm'], allow_failed_imports=False)
default_scope = 'mmpretrain'

# Runner that also distributes without a GPU (gloo on CPU, NCCL on GPUs)
runner_type = 'NoFrostRunner'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
    # scores a val/test set of a class subset (ImageNet-R/-A: 200 of the
    # 1000 classes) on its classes' logits; does nothing for other datasets
    class_subset=dict(type='ClassSubsetHook'),
)

env_cfg = dict(
    # cuDNN autotuning for training's fixed batch shapes; the robust test
    # loops switch it off while attacking (survivor batches change size)
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # NoFrostRunner switches nccl to gloo on machines without CUDA
    dist_cfg=dict(backend='nccl', timeout=1800),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=None, deterministic=False)
