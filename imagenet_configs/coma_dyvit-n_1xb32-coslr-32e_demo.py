# The demo's CoMA pre-training with 8x the budget: 32 epochs of the 2,000-scene pool (1,984 steps
# of batch 32), the length at which the efficiency study's fine-tune and probe turned above random
# initialisation (docs/results.md, "Ten times the budget"). 27-31 minutes on one CPU thread (measured):
# opt-in, `python tools/demo.py --recipe demo-long`; everything else as in the 4-epoch demo config.
_base_ = ['./coma_dyvit-n_1xb32-coslr-4e_demo.py']
param_scheduler = [  # the study's shape: warm-up over 1/8 of the steps, then cosine to 1e-6
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=248),
    dict(type='CosineAnnealingLR', T_max=1736, eta_min=1e-6, by_epoch=False, begin=248, end=1984),
]
train_cfg = dict(max_epochs=32)
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=4, max_keep_ckpts=2))
