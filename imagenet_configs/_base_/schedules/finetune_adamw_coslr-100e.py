# MAE's fine-tuning schedule (SPEC section 5): AdamW betas (0.9, 0.999), wd 0.05,
# lr = 5e-4 * batch / 256, layer-wise lr decay (set per model), 5 warm-up epochs, cosine to 1e-6,
# 100 epochs; `--auto-scale-lr` rescales the lr to the real batch.
base_lr = 5e-4
optim_wrapper = dict(
    type='AutoAmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=base_lr * 1024 / 256, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.75),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=95, eta_min=1e-6, by_epoch=True, begin=5, end=100,
         convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=100, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(base_batch_size=1024, enable=False)
