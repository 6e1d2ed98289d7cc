# MAE's pre-training recipe (SPEC section 5): AdamW, lr = 1.5e-4 * batch / 256, betas (0.9, 0.95),
# weight decay 0.05 (none on norms, biases, tokens, position tables and gates), 40 warm-up epochs,
# then cosine. `--auto-scale-lr` rescales the lr from base_batch_size to the real batch.
base_lr = 1.5e-4
optim_wrapper = dict(
    type='AutoAmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=base_lr * 2048 / 256, betas=(0.9, 0.95), weight_decay=0.05),
    # no layer decay (rate 1); no weight decay on what the models' no_weight_decay() lists
    constructor='LayerDecayOptimWrapperConstructor',
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=40, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=760, by_epoch=True, begin=40, end=800, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=800)
auto_scale_lr = dict(base_batch_size=2048, enable=False)
