# The MAE baseline of `--recipe demo-long`: the 4-epoch MAE demo config with the 32-epoch schedule
# of coma_dyvit-n_1xb32-coslr-32e_demo.py (same data, steps, lr and checkpoints).
_base_ = ['./mae_dyvit-n_1xb32-coslr-4e_demo.py']
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=248),
    dict(type='CosineAnnealingLR', T_max=1736, eta_min=1e-6, by_epoch=False, begin=248, end=1984),
]
train_cfg = dict(max_epochs=32)
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=4, max_keep_ckpts=2))
