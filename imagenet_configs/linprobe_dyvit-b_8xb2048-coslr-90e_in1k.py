# Linear probing of a CoMA (or MAE) pre-trained DyViT-B on ImageNet-1K, MAE's protocol:
# frozen backbone, BatchNorm (no affine) + linear head, LARS lr 0.1 * 16384 / 256, no weight decay,
# 10 warm-up epochs then cosine, 90 epochs, batch 8 x 2048; RandomResizedCrop + flip only.
#   tools/dist_train.sh imagenet_configs/linprobe_dyvit-b_8xb2048-coslr-90e_in1k.py 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=dyvit-b_coma.pth
_base_ = [
    './_base_/datasets/in1k_finetune.py',
    './_base_/default_runtime.py',
]
model = dict(
    type='ImageClassifier',
    backbone=dict(type='DyViT', arch='base', out_indices=(3, ), init_cfg=dict(type='Pretrained', checkpoint=None)),
    num_classes=1000,
    freeze_backbone=True,
    head=dict(pre_norm='batch', init_std=0.01),
    data_preprocessor={{_base_.data_preprocessor}},
)
train_pipeline = [
    dict(type='LoadImage', skip_corrupt=False),
    dict(type='RandomResizedCrop', size=224, scale=(0.08, 1.0)),
    dict(type='RandomHorizontalFlip', prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=2048, num_workers=16, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=256)
test_dataloader = val_dataloader
base_lr = 0.1
optim_wrapper = dict(
    type='AutoAmpOptimWrapper',
    optimizer=dict(type='LARS', lr=base_lr * 16384 / 256, momentum=0.9, weight_decay=0.0),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=10, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=80, by_epoch=True, begin=10, end=90, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=90, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(base_batch_size=16384, enable=False)
default_hooks = dict(checkpoint=dict(save_best='accuracy/top1', rule='greater'))
