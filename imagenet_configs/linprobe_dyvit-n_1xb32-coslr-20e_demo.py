# Linear probing of DyViT-N on the bundled demo folder (10 classes, 128 px), 2 CPU cores:
# frozen backbone, BatchNorm (no affine) + linear head, SGD momentum 0.9 (LARS needs huge batches),
# no weight decay, cosine; RandomResizedCrop + flip only.
#   python tools/train.py imagenet_configs/linprobe_dyvit-n_1xb32-coslr-20e_demo.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/demo/dyvit-n_coma.pth
_base_ = ['./linprobe_dyvit-b_8xb2048-coslr-90e_in1k.py']
data_root = 'data/demo/imagenet/'
img_size = 128
model = dict(backbone=dict(arch='nano'), num_classes=10)
train_pipeline = [
    dict(type='LoadImage', skip_corrupt=False),
    dict(type='RandomResizedCrop', size=img_size, scale=(0.25, 1.0)),
    dict(type='RandomHorizontalFlip', prob=0.5),
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
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=2, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=18, by_epoch=True, begin=2, end=20, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=20, val_interval=5)
auto_scale_lr = dict(base_batch_size=32)
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=5, max_keep_ckpts=2))
log_processor = dict(window_size=5)
