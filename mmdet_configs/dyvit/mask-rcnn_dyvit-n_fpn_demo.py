# Mask R-CNN + FPN with DyViT-N on the bundled demo COCO data (tools/make_demo_data.py --coco),
# sized for 2 CPU cores: images up to 320x256, a 128-channel FPN, fewer proposals. For a real COCO
# 2017 folder use mask-rcnn_dyvit-{t,s,b}_fpn_1x_coco.py (only data_root differs in layout).
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', '../../configs/_base_/coma_runtime.py']
data_root = 'data/demo/coco/'
metainfo = dict(classes=('circle', 'rectangle', 'triangle'), palette=[(220, 20, 60), (0, 128, 255), (60, 180, 75)])
fpn = 128
model = dict(
    backbone=dict(
        _delete_=True, type='DyViT', arch='nano', out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=None)),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=fpn),
    rpn_head=dict(in_channels=fpn, feat_channels=fpn),
    roi_head=dict(
        # 2x2 samples per RoIAlign bin instead of mmdet's adaptive count: 10% less time per step here
        bbox_roi_extractor=dict(out_channels=fpn, roi_layer=dict(sampling_ratio=2)),
        bbox_head=dict(in_channels=fpn, fc_out_channels=256, num_classes=3),
        mask_roi_extractor=dict(out_channels=fpn, roi_layer=dict(sampling_ratio=2)),
        mask_head=dict(in_channels=fpn, conv_out_channels=fpn, num_classes=3)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=300), rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=20)))
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(320, 256), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=(320, 256), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    # new workers each epoch, seeded from the main process (RNGStateHook): a resume after a kill is exact
    batch_size=4, num_workers=1, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, ann_file='annotations/instances_train2017.json',
                 data_prefix=dict(img='train2017/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2, num_workers=1, persistent_workers=True,
    dataset=dict(data_root=data_root, metainfo=metainfo, ann_file='annotations/instances_val2017.json',
                 data_prefix=dict(img='val2017/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json', metric=['bbox', 'segm'])
test_evaluator = val_evaluator
optim_wrapper = dict(
    # the coma scope: --amp of mmdet's and mmseg's train.py builds coma's AmpOptimWrapper (float32 on CPU)
    _delete_=True, _scope_='coma', type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=4e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor', paramwise_cfg=dict(layer_decay_rate=0.9),
    clip_grad=dict(max_norm=10.0))
max_epochs = 8  # 96 iterations: make demo fits in 25 minutes
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=40),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[6, 7], gamma=0.1),
]
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(type='AtomicCheckpointHook', interval=2, max_keep_ckpts=1, save_last=True))
log_processor = dict(window_size=10)
auto_scale_lr = dict(enable=False, base_batch_size=4)
