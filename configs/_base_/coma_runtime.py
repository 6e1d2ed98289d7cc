# Runtime lines every CoMA config shares (ImageNet loops, Mask R-CNN, UperNet): list it beside the
# package base, e.g. _base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', '../../configs/_base_/coma_runtime.py']
custom_imports = dict(imports=['coma'], allow_failed_imports=False)
# stop at the first NaN/inf loss naming the iteration; checkpoints carry the random states (exact resume)
custom_hooks = [dict(type='FiniteLossHook'), dict(type='RNGStateHook')]
# a fixed seed: resumed runs seed their data workers as the original run did (exact resume)
randomness = dict(seed=0, deterministic=False)
