# UperNet (+ auxiliary FCN head) with DyViT-T on ADE20K, 512x512 crops, 8 GPUs x 2 images,
# 160k iterations: AdamW lr 1e-4 with layer-wise lr decay, wd 0.01, 1,500 warm-up iterations, then
# poly decay. SyncBN in the heads; a CPU or single-process run reverts it to BN automatically (the
# mmengine Runner does this when training is not distributed).
# Pre-trained weights on the command line: --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py', '../../configs/_base_/coma_runtime.py']
widths = [64, 128, 256, 512]
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True, type='DyViT', arch='tiny', drop_path_rate=0.1, out_indices=(0, 1, 2, 3),
        with_cp=False, init_cfg=dict(type='Pretrained', checkpoint=None)),
    decode_head=dict(in_channels=widths, num_classes=150),
    auxiliary_head=dict(in_channels=widths[2], num_classes=150))
optim_wrapper = dict(
    # coma's AmpOptimWrapper: float16 with loss scaling on CUDA (mmcv's CUDA ops take no bfloat16), float32
    # on CPU (mmcv's CPU ops take float32 only); --amp of mmdet's and mmseg's train.py keeps it
    _delete_=True, _scope_='coma', type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.01),
    constructor='LayerDecayOptimWrapperConstructor', paramwise_cfg=dict(layer_decay_rate=0.9))
# checkpoints written to a temporary file, then renamed: a kill never leaves a half-written one
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
