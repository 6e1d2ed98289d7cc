# UperNet (+ auxiliary FCN head) with DyViT-S on ADE20K, 512x512 crops: the DyViT-T recipe with the small backbone.
_base_ = './upernet_dyvit-t_8xb2-160k_ade20k-512x512.py'
widths = [72, 144, 288, 576]
model = dict(backbone=dict(arch='small', drop_path_rate=0.2),
             decode_head=dict(in_channels=widths), auxiliary_head=dict(in_channels=widths[2]))
