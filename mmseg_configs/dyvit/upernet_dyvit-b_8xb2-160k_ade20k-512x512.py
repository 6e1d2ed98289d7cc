# UperNet (+ auxiliary FCN head) with DyViT-B on ADE20K, 512x512 crops: the DyViT-T recipe with the base backbone.
_base_ = './upernet_dyvit-t_8xb2-160k_ade20k-512x512.py'
widths = [96, 192, 384, 768]
model = dict(backbone=dict(arch='base', drop_path_rate=0.3),
             decode_head=dict(in_channels=widths), auxiliary_head=dict(in_channels=widths[2]))
