# The MAE baseline (random masks, no M_{t-1}) on DyViT-N on the bundled demo folder: the CoMA demo
# config (data, crops, schedule, runtime) with the MAE algorithm, same backbone, decoder and ratio.
_base_ = ['./coma_dyvit-n_1xb32-coslr-4e_demo.py']
model = dict(
    _delete_=True,
    type='MAE',
    backbone=dict(type='DyViT', arch='nano', out_indices=(3, )),
    decoder=dict(type='CoMADecoder', embed_dim=128, depth=2, num_heads=4),
    mask_ratio=0.6,
    head=dict(type='PixelReconstructionHead', norm_pix=True),
    data_preprocessor={{_base_.data_preprocessor}},
)
