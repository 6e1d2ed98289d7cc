"""ATen ops of one pre-training step (forward, backward, AdamW) at batch 2, 224x224, float32 and under
CPU bf16 autocast (the GPU recipe's precision; its casts are kernels there): CoMA on DyViT-B r0.6
against MAE on ViT-B/16 r0.75. Run from a checkout: ``PYTHONPATH=. python docs/cpu/ab8/step_ops.py``."""
import json

import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS

import coma  # noqa: F401
from coma.analysis import count_aten_ops
from coma.benchmarks.pretrain import DECODER, SETTINGS

torch.set_num_threads(2)
out = {}
for name in ('coma_dyvit-b_r0.6', 'mae_vit-b-p16_r0.75'):
    torch.manual_seed(0)
    model = MODELS.build(dict(SETTINGS[name], decoder=DECODER)).train()
    optim = build_optim_wrapper(model, dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4)))
    x = torch.randn(2, 3, 224, 224)
    for precision in ('float32', 'bf16 autocast'):
        ctx = (lambda: torch.autocast('cpu', dtype=torch.bfloat16)) if precision != 'float32' else torch.enable_grad
        with ctx():
            model.train_step(dict(inputs=x), optim)
            c = count_aten_ops(lambda: model.train_step(dict(inputs=x), optim))
        out[f'{name}, {precision}'] = dict(ops=c.total, kernels=c.kernels, casts=c.per_op['aten._to_copy'])
        print(name, precision, out[f'{name}, {precision}'], flush=True)
print(json.dumps(out))
