# CoMA on DyViT-B, our reading of the paper (docs/design.md): 32-px units, ratio 0.6, M_{t-1} = the
# previous step (m=0), lambda_lat = 1 with a cosine latent loss on batch-standardised targets (without
# them, loss_lat drives the encoder to collapse: docs/results.md), MAE's decoder (8 x 512),
# normalised pixel targets. The data preprocessor comes from the dataset base: set it in the config.
model = dict(
    type='CoMA',
    backbone=dict(type='DyViT', arch='base', out_indices=(3, )),
    decoder=dict(type='CoMADecoder', embed_dim=512, depth=8, num_heads=16),
    mask_ratio=0.6, momentum=0.0,
    head=dict(type='PixelReconstructionHead', norm_pix=True),
    latent_head=dict(type='LatentPredictionHead', loss_weight=1.0,
                     loss=dict(type='LatentPredictionLoss', kind='cosine', target_norm='batch')))
