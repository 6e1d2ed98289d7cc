# As finetune_dyvit-b_8xb128-coslr-100e_in1k.py, with a model EMA (mmengine's EMAHook): validation
# and the saved checkpoints use the averaged weights.
_base_ = ['./finetune_dyvit-b_8xb128-coslr-100e_in1k.py']
custom_hooks = [
    dict(type='FiniteLossHook'),
    dict(type='RNGStateHook'),
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=1e-4, update_buffers=True, priority=49),
]
