# Fine-tunes a CoMA or MAE pre-trained ViT-B/16 on ImageNet-1K (the paper's 84.1% setting):
# the DyViT-B recipe (8 GPUs x 128, 100 epochs, drop path 0.1, same augmentation) with layer decay 0.65.
_base_ = ['./finetune_dyvit-b_8xb128-coslr-100e_in1k.py']
model = dict(backbone=dict(_delete_=True, type='ViT', arch='base', patch_size=16, unit=32, drop_path_rate=0.1,
                           init_cfg=dict(type='Pretrained', checkpoint=None)))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.65))
