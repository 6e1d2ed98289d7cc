# Fine-tunes DyViT-N on the bundled demo folder (tools/make_demo_data.py --imagenet: 10 classes of
# scikit-image photo crops, 128 px), sized for 2 CPU cores. The full recipe's pieces at small scale:
# layer decay, drop path, timm RandAugment / mixup / cutmix / label smoothing, AdamW + cosine, top-1/5.
#   python tools/train.py imagenet_configs/finetune_dyvit-n_1xb32-coslr-10e_demo.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/demo/dyvit-n_coma.pth
_base_ = './finetune_dyvit-b_8xb128-coslr-100e_in1k.py'
data_root = 'data/demo/imagenet/'
img_size = 128
model = dict(backbone=dict(arch='nano'), num_classes=10)
train_pipeline = [
    dict(type='LoadImage', skip_corrupt=False),
    dict(type='RandomResizedCrop', size=img_size, scale=(0.25, 1.0)),
    dict(type='RandomHorizontalFlip', prob=0.5),
    dict(type='TimmRandAugment', config_str='rand-m9-mstd0.5-inc1', img_size=img_size),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImage', skip_corrupt=False),
    dict(type='ResizeCenterCrop', size=img_size, crop_pct=1.0),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=32, num_workers=1, pin_memory=False,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=50, num_workers=1, pin_memory=False,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=9, eta_min=1e-6, by_epoch=True, begin=1, end=10,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=10, val_interval=5)
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=5, max_keep_ckpts=2))
log_processor = dict(window_size=5)
