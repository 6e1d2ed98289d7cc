# ImageNet-1K for self-supervised pre-training: data_root/train/<class>/*.JPEG (labels unused);
# a flat folder of images works too. RandomResizedCrop(224, 0.2-1) + flip, as MAE.
data_root = 'data/imagenet/'
data_preprocessor = dict(
    type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
    non_blocking=True)  # the batch (pinned by the loader) is copied to the GPU without waiting for it
train_pipeline = [
    dict(type='LoadImage', skip_corrupt=False),
    dict(type='RandomResizedCrop', size=224, scale=(0.2, 1.0)),
    dict(type='RandomHorizontalFlip', prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=256,
    num_workers=8,
    persistent_workers=False,  # new workers each epoch, seeded from the main process: exact resume
    pin_memory=True,
    drop_last=True,
    # mmengine's default_collate stacks the batch in the workers: one copy to the device and one
    # normalisation a batch (pseudo_collate's list is copied and normalised image by image)
    collate_fn=dict(type='default_collate'),
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='ImageFolder', data_root=data_root, data_prefix=dict(img_path='train'),
                 pipeline=train_pipeline),
)
