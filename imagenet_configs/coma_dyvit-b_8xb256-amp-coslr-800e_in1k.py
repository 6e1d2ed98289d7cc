# CoMA pre-training of DyViT-B on ImageNet-1K, 8 GPUs x 256 images, AMP, 800 epochs.
# Our reading of the paper (docs/design.md): 32-px units, ratio 0.6, M_{t-1} = previous step (m=0),
# lambda_lat = 1 with a cosine latent loss, MAE decoder 8 x 512, normalised pixel targets.
_base_ = [
    './_base_/models/coma_dyvit-b.py',
    './_base_/datasets/in1k_pretrain.py',
    './_base_/schedules/pretrain_adamw_coslr-800e.py',
    './_base_/default_runtime.py',
]
# torch.compile of the encoders' masked forward and the decoders, on GPUs only (on CPU it does not
# pay); one graph each (fullgraph), static shapes.
model = dict(compile='cuda', data_preprocessor={{_base_.data_preprocessor}})
train_dataloader = dict(batch_size=256)
# M_{t-1} is stored as buffers that are identical on every rank: no need to broadcast them.
model_wrapper_cfg = dict(type='MMDistributedDataParallel', broadcast_buffers=False)
# stop on a non-finite loss naming its iteration; random states in checkpoints (exact resume)
custom_hooks = [dict(type='FiniteLossHook'), dict(type='RNGStateHook')]
