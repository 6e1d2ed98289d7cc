# UperNet (+ auxiliary FCN head) with DyViT-N on the bundled ADE20K-format demo data
# (tools/make_demo_data.py --ade; ADE20K's folder layout and reduce_zero_label, our own 4 classes,
# hence the generic BaseSegDataset), sized for 2 CPU cores: 128x128 crops, 64/32-channel heads.
# The heads keep the base config's SyncBN: on one process the Runner reverts it to BN by itself.
# A real ADE20K folder (ADEChallengeData2016) works with upernet_dyvit-{t,s,b}_8xb2-160k_ade20k-512x512.py.
_base_ = ['mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py', '../../configs/_base_/coma_runtime.py']
data_root = 'data/demo/ade/'
classes = ('brick', 'grass', 'gravel', 'stars')
metainfo = dict(classes=classes, palette=[[120, 120, 120], [4, 200, 3], [180, 120, 120], [6, 230, 230]])
crop_size = (128, 128)
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        _delete_=True, type='DyViT', arch='nano', out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=None)),
    decode_head=dict(in_channels=[32, 64, 128, 256], channels=64, num_classes=len(classes)),
    auxiliary_head=dict(in_channels=128, channels=32, num_classes=len(classes)),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(96, 96)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='CheckSegLabels', num_classes=len(classes)),  # a bad label file fails by name
    dict(type='RandomResize', scale=(256, 192), ratio_range=(0.5, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.9),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(256, 192), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=8, num_workers=1, persistent_workers=True,
    dataset=dict(type='BaseSegDataset', img_suffix='.jpg', seg_map_suffix='.png', data_root=data_root,
                 metainfo=metainfo, reduce_zero_label=True,
                 data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=1, persistent_workers=True,
    dataset=dict(type='BaseSegDataset', img_suffix='.jpg', seg_map_suffix='.png', data_root=data_root,
                 metainfo=metainfo, reduce_zero_label=True,
                 data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
optim_wrapper = dict(
    # the coma scope: --amp of mmdet's and mmseg's train.py builds coma's AmpOptimWrapper (float32 on CPU)
    _delete_=True, _scope_='coma', type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-4, betas=(0.9, 0.999), weight_decay=0.01),
    constructor='LayerDecayOptimWrapperConstructor', paramwise_cfg=dict(layer_decay_rate=0.9))
iters = 320  # make demo fits in 25 minutes
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=40),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=40, end=iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=iters)
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=80, max_keep_ckpts=1, save_last=True),
                     visualization=dict(type='SegVisualizationHook', draw=False))
