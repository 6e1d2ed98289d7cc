# ImageNet-1K classification: data_root/{train,val}/<class>/*.JPEG. MAE's fine-tuning augmentation
# (SPEC section 5): RandomResizedCrop(224, 0.08-1) + flip + timm RandAugment 'rand-m9-mstd0.5-inc1';
# mixup/cutmix/label smoothing and random erasing are batch-level, in the model (ImageClassifier).
# Evaluation: resize to 256, centre crop 224; top-1 and top-5 accuracy.
data_root = 'data/imagenet/'
img_size = 224
data_preprocessor = dict(
    type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
    non_blocking=True)  # the batch (pinned by the loader) is copied to the GPU without waiting for it
train_pipeline = [
    dict(type='LoadImage', skip_corrupt=False),
    dict(type='RandomResizedCrop', size=img_size, scale=(0.08, 1.0)),
    dict(type='RandomHorizontalFlip', prob=0.5),
    dict(type='TimmRandAugment', config_str='rand-m9-mstd0.5-inc1', img_size=img_size),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImage', skip_corrupt=False),
    dict(type='ResizeCenterCrop', size=img_size, crop_pct=0.875),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=False,  # new workers each epoch, seeded from the main process: exact resume
    pin_memory=True,
    drop_last=True,  # mixup/cutmix pair samples: even batches only
    # mmengine's default_collate stacks the batch in the workers: one copy to the device and one
    # normalisation a batch (pseudo_collate's list is copied and normalised image by image)
    collate_fn=dict(type='default_collate'),
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='ImageFolder', data_root=data_root, data_prefix=dict(img_path='train'),
                 pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    collate_fn=dict(type='default_collate'),
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ImageFolder', data_root=data_root, data_prefix=dict(img_path='val'),
                 pipeline=test_pipeline),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
