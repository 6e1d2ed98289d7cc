# Mask R-CNN + FPN with DyViT-B on COCO 2017, 1x schedule (12 epochs, lr steps at 8 and 11),
# AdamW with layer-wise lr decay. Pre-trained weights (tools/convert_checkpoint.py output) are given on
# the command line: --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['coma'], allow_failed_imports=False)
widths = [96, 192, 384, 768]
model = dict(
    backbone=dict(
        _delete_=True, type='DyViT', arch='base', drop_path_rate=0.3, out_indices=(0, 1, 2, 3),
        with_cp=False, init_cfg=dict(type='Pretrained', checkpoint=None)),
    neck=dict(in_channels=widths))
optim_wrapper = dict(
    _delete_=True,
    type='AutoAmpOptimWrapper',
    cpu_dtype=None,  # mmcv's CPU ops (NMS, RoIAlign) take float32 only
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9))
# stop at the first NaN/inf loss naming the iteration; checkpoints carry the random states (exact resume)
custom_hooks = [dict(type='FiniteLossHook'), dict(type='RNGStateHook')]
# a fixed seed: resumed runs seed their data workers as the original run did (exact resume)
randomness = dict(seed=0, deterministic=False)
