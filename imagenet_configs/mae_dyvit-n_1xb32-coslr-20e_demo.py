# The MAE baseline (random masks, no M_{t-1}) on DyViT-N on the bundled demo folder (tools/make_demo_data.py --imagenet),
# sized for 2 CPU cores: 128-px crops (4x4 units), a 2 x 128 decoder, fp32, 20 short epochs.
_base_ = [
    './_base_/datasets/in1k_pretrain.py',
    './_base_/schedules/pretrain_adamw_coslr-800e.py',
    './_base_/default_runtime.py',
]
data_root = 'data/demo/imagenet/'
model = dict(
    type='MAE',
    backbone=dict(type='DyViT', arch='nano', out_indices=(3, )),
    decoder=dict(type='CoMADecoder', embed_dim=128, depth=2, num_heads=4),
    mask_ratio=0.6,
    norm_pix=True,
    data_preprocessor={{_base_.data_preprocessor}},
)
train_pipeline = [
    dict(type='LoadImage', skip_corrupt=False),
    dict(type='RandomResizedCrop', size=128, scale=(0.2, 1.0)),
    dict(type='RandomHorizontalFlip', prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32, num_workers=1, persistent_workers=True, pin_memory=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=1.5e-3), clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=2, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=18, by_epoch=True, begin=2, end=20, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=20)
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=5, max_keep_ckpts=2))
log_processor = dict(window_size=5)
randomness = dict(seed=0, deterministic=False)
