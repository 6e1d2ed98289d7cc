# The MAE baseline on DyViT-B: random 32-px unit masks, no M_{t-1} branch, the same decoder.
_base_ = './coma_dyvit-b_8xb256-amp-coslr-800e_in1k.py'
model = dict(_delete_=True, type='MAE', backbone=dict(type='DyViT', arch='base', out_indices=(3, )),
             decoder=dict(type='CoMADecoder', embed_dim=512, depth=8, num_heads=16), mask_ratio=0.6,
             head=dict(type='PixelReconstructionHead', norm_pix=True), compile='cuda', data_preprocessor={{_base_.data_preprocessor}})
# every buffer is the same on every rank (no BatchNorm): no broadcast, and no read of the step counter, per step
model_wrapper_cfg = dict(type='MMDistributedDataParallel', broadcast_buffers=False)
