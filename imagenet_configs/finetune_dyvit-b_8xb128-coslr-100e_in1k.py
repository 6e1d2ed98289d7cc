# Fine-tunes a CoMA (or MAE) pre-trained DyViT-B on ImageNet-1K: 8 GPUs x 128, 100 epochs.
#   python tools/convert_checkpoint.py work_dirs/coma_dyvit-b/epoch_800.pth dyvit-b_coma.pth
#   tools/dist_train.sh imagenet_configs/finetune_dyvit-b_8xb128-coslr-100e_in1k.py 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=dyvit-b_coma.pth
# Layer decay 0.75 (24 blocks, as MAE uses for ViT-L's depth), drop path 0.1, RandAugment 9/0.5,
# mixup 0.8, cutmix 1.0, label smoothing 0.1, random erasing 0.25.
_base_ = [
    './_base_/datasets/in1k_finetune.py',
    './_base_/schedules/finetune_adamw_coslr-100e.py',
    './_base_/default_runtime.py',
]
model = dict(
    type='ImageClassifier',
    backbone=dict(type='DyViT', arch='base', out_indices=(3, ), drop_path_rate=0.1,
                  init_cfg=dict(type='Pretrained', checkpoint=None)),
    num_classes=1000,
    head=dict(pre_norm='layer', init_std=2e-5),
    mixup=dict(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1),
    random_erasing=dict(probability=0.25, mode='pixel'),
    data_preprocessor={{_base_.data_preprocessor}},
)
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.75))
default_hooks = dict(checkpoint=dict(save_best='accuracy/top1', rule='greater'))
