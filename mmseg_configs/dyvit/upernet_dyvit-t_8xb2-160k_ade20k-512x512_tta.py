# Multi-scale (0.5-1.75) + flip test-time augmentation for UperNet DyViT-T, through mmseg's TTA:
#   python tools/test.py mmseg_configs/dyvit/upernet_dyvit-t_8xb2-160k_ade20k-512x512_tta.py CKPT --tta
# (mmseg's own tools/test.py and `mim test mmseg ... --tta` read the same tta_model / tta_pipeline).
_base_ = './upernet_dyvit-t_8xb2-160k_ade20k-512x512.py'
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_model = dict(type='SegTTAModel')
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale_factor=r, keep_ratio=True) for r in img_ratios],
        [dict(type='RandomFlip', prob=0.0, direction='horizontal'),
         dict(type='RandomFlip', prob=1.0, direction='horizontal')],
        [dict(type='LoadAnnotations')],
        [dict(type='PackSegInputs')],
    ]),
]
