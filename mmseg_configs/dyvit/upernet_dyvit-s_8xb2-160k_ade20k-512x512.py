# UperNet (+ auxiliary FCN head) with DyViT-S on ADE20K, 512x512 crops, 8 GPUs x 2 images,
# 160k iterations: AdamW lr 1e-4 with layer-wise lr decay, wd 0.01, 1,500 warm-up iterations, then
# poly decay. SyncBN in the heads; a CPU or single-process run reverts it to BN automatically (the
# mmengine Runner does this when training is not distributed).
# Pre-trained weights on the command line: --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = 'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py'
custom_imports = dict(imports=['coma'], allow_failed_imports=False)
widths = [72, 144, 288, 576]
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True, type='DyViT', arch='small', drop_path_rate=0.2, out_indices=(0, 1, 2, 3),
        with_cp=False, init_cfg=dict(type='Pretrained', checkpoint=None)),
    decode_head=dict(in_channels=widths, num_classes=150),
    auxiliary_head=dict(in_channels=widths[2], num_classes=150))
optim_wrapper = dict(
    _delete_=True,
    type='AutoAmpOptimWrapper',
    cpu_dtype=None,  # mmcv's CPU ops (NMS, RoIAlign) take float32 only
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.01),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9))
# stop at the first NaN/inf loss naming the iteration; checkpoints carry the random states (exact resume)
custom_hooks = [dict(type='FiniteLossHook'), dict(type='RNGStateHook')]
# a fixed seed: resumed runs seed their data workers as the original run did (exact resume)
randomness = dict(seed=0, deterministic=False)
