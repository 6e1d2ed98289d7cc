# Mask R-CNN + FPN with DyViT-B on COCO 2017, 3x multi-scale schedule: the DyViT-T recipe with the base backbone.
_base_ = './mask-rcnn_dyvit-t_fpn_ms-3x_coco.py'
widths = [96, 192, 384, 768]
model = dict(backbone=dict(arch='base', drop_path_rate=0.3), neck=dict(in_channels=widths))
