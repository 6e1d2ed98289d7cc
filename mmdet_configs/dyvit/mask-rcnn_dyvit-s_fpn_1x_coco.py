# Mask R-CNN + FPN with DyViT-S on COCO 2017, 1x schedule: the DyViT-T recipe with the small backbone.
_base_ = './mask-rcnn_dyvit-t_fpn_1x_coco.py'
widths = [72, 144, 288, 576]
model = dict(backbone=dict(arch='small', drop_path_rate=0.2), neck=dict(in_channels=widths))
