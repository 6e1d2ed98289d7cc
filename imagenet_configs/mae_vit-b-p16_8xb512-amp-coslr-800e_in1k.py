# The MAE baseline in our framework: ViT-B/16, per-patch random masking at 0.75 (MAE's recipe;
# set mask_ratio=0.6 for the paper's comparisons), the same decoder, 8 GPUs x 512 images, AMP.
_base_ = [
    './_base_/datasets/in1k_pretrain.py',
    './_base_/schedules/pretrain_adamw_coslr-800e.py',
    './_base_/default_runtime.py',
]
model = dict(
    type='MAE',
    backbone=dict(type='ViT', arch='base', patch_size=16, unit=16),
    decoder=dict(type='CoMADecoder', embed_dim=512, depth=8, num_heads=16),
    mask_ratio=0.75,
    head=dict(type='PixelReconstructionHead', norm_pix=True),
    compile='cuda',  # torch.compile of encoder and decoder on GPUs (not on CPU, where it does not pay)
    data_preprocessor={{_base_.data_preprocessor}},
)
train_dataloader = dict(batch_size=512)
# every buffer is the same on every rank (no BatchNorm): no broadcast, and no read of the step counter, per step
model_wrapper_cfg = dict(type='MMDistributedDataParallel', broadcast_buffers=False)
optim_wrapper = dict(optimizer=dict(lr=1.5e-4 * 4096 / 256))
auto_scale_lr = dict(base_batch_size=4096)
