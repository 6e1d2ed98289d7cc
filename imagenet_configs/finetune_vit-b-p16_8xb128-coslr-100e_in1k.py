# Fine-tunes a CoMA or MAE pre-trained ViT-B/16 on ImageNet-1K (the paper's 84.1% setting):
# 8 GPUs x 128, 100 epochs, layer decay 0.65, drop path 0.1; augmentation as the DyViT recipe.
_base_ = [
    './_base_/datasets/in1k_finetune.py',
    './_base_/schedules/finetune_adamw_coslr-100e.py',
    './_base_/default_runtime.py',
]
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ViT', arch='base', patch_size=16, unit=32, drop_path_rate=0.1,
                  init_cfg=dict(type='Pretrained', checkpoint=None)),
    num_classes=1000,
    head=dict(pre_norm='layer', init_std=2e-5),
    mixup=dict(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1),
    random_erasing=dict(probability=0.25, mode='pixel'),
    data_preprocessor={{_base_.data_preprocessor}},
)
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.65))
default_hooks = dict(checkpoint=dict(save_best='accuracy/top1', rule='greater'))
