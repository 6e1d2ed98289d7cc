# Runtime shared by the ImageNet loops (pre-training, fine-tuning, linear probing).
_base_ = '../../configs/_base_/coma_runtime.py'
default_scope = None
default_hooks = dict(
    # losses stay on the device and are read at the logger's interval: no iteration waits for the GPU
    runtime_info=dict(type='DeferredRuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # written to a temporary file, then renamed: a kill never leaves a half-written checkpoint
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3, save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
log_processor = dict(window_size=10, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
