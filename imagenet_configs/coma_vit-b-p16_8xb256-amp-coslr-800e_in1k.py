# CoMA pre-training of ViT-B/16 on ImageNet-1K, 8 GPUs x 256 images, AMP, 800 epochs: the DyViT-B
# recipe with a plain ViT-B/16, whose 32-px unit is 2x2 patches.
_base_ = './coma_dyvit-b_8xb256-amp-coslr-800e_in1k.py'
model = dict(backbone=dict(_delete_=True, type='ViT', arch='base', patch_size=16, unit=32))
