# Mask R-CNN + FPN with DyViT-T on COCO 2017, 1x schedule (12 epochs, lr steps at 8 and 11),
# AdamW with layer-wise lr decay. Pre-trained weights (tools/convert_checkpoint.py output) are given on
# the command line: --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', '../../configs/_base_/coma_runtime.py']
widths = [64, 128, 256, 512]
model = dict(
    backbone=dict(
        _delete_=True, type='DyViT', arch='tiny', drop_path_rate=0.1, out_indices=(0, 1, 2, 3),
        with_cp=False, init_cfg=dict(type='Pretrained', checkpoint=None)),
    neck=dict(in_channels=widths))
optim_wrapper = dict(
    # coma's AmpOptimWrapper: float16 with loss scaling on CUDA (mmcv's CUDA ops take no bfloat16), float32
    # on CPU (mmcv's CPU ops take float32 only); --amp of mmdet's and mmseg's train.py keeps it
    _delete_=True, _scope_='coma', type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor', paramwise_cfg=dict(layer_decay_rate=0.9))
# new workers each epoch, seeded from the main process (RNGStateHook): a resume after a kill is exact
train_dataloader = dict(persistent_workers=False)
# checkpoints written to a temporary file, then renamed: a kill never leaves a half-written one
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
