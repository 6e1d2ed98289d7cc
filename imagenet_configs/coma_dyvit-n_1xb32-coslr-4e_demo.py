# CoMA pre-training of DyViT-N on the demo's unlabelled pool (tools/make_demo_data.py --pool: 2,000
# scenes of the downstream domain, 40x the labelled sets), sized for 2 CPU cores: 128-px crops (4x4
# units), a 2 x 128 decoder, fp32, 248 steps of batch 32 (4 epochs of the pool). The lr follows SPEC's
# rule, 1.5e-4 * 32 / 256.
_base_ = [
    './_base_/models/coma_dyvit-b.py',
    './_base_/datasets/in1k_pretrain.py',
    './_base_/schedules/pretrain_adamw_coslr-800e.py',
    './_base_/default_runtime.py',
]
data_root = 'data/demo/'
model = dict(backbone=dict(arch='nano'), decoder=dict(embed_dim=128, depth=2, num_heads=4),
             data_preprocessor={{_base_.data_preprocessor}})
train_pipeline = [
    dict(type='LoadImage', skip_corrupt=False),
    dict(type='RandomResizedCrop', size=128, scale=(0.2, 1.0)),
    dict(type='RandomHorizontalFlip', prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32, num_workers=1, persistent_workers=False, pin_memory=False,
    dataset=dict(data_root=data_root, data_prefix=dict(img_path='pool'), pipeline=train_pipeline))
batch_size = 32
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=1.5e-4 * batch_size / 256), clip_grad=dict(max_norm=5.0))
param_scheduler = [  # 10% warm-up, then cosine (by iteration: the pool gives 62 steps an epoch)
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=24),
    dict(type='CosineAnnealingLR', T_max=224, by_epoch=False, begin=24, end=248),
]
train_cfg = dict(max_epochs=4)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=1, max_keep_ckpts=2))
log_processor = dict(window_size=10)
# stop on a non-finite loss naming its iteration; random states in checkpoints (exact resume)
custom_hooks = [dict(type='FiniteLossHook'), dict(type='RNGStateHook')]
