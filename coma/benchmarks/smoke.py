"""The GPU smoke stage (first stage of ``tools/gpu_run.py``): does a training step run at all?

One CoMA DyViT-B step (ratio 0.6) and one MAE ViT-B/16 step (ratio 0.75), eager, with the full
recipes' optimizer wrapper (``AutoAmpOptimWrapper``: bf16 autocast without a loss scaler on a GPU that
supports it), gradients on, with the math SDPA backend disabled on CUDA (a fused kernel that refuses
its inputs raises instead of falling back quietly), every attention call checked against the fused
kernels' contract. On CUDA, also DyViT-B's float32 outputs and gradients (TF32 off) on the GPU
against the CPU's, dense (one window and shifted windows) and masked. Each check reports ``OK`` or
its exception and the next one runs.
"""
import time
import traceback
from typing import Dict

from coma.benchmarks.common import worker_main

MODULE = 'coma.benchmarks.smoke'
STEPS = ('coma_dyvit-b_r0.6', 'mae_vit-b-p16_r0.75')


def _step(setting: str, device, batch: int) -> Dict:
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from coma.analysis.kernel_contract import record_sdpa_calls
    from coma.benchmarks.pretrain import DECODER, SETTINGS

    model = MODELS.build(dict(SETTINGS[setting], decoder=DECODER)).to(device).train()
    optim = build_optim_wrapper(model, dict(
        type='AutoAmpOptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05)))
    x = torch.randn(batch, 3, 224, 224, device=device)
    # CUDA: the fused kernels only. A CPU has no fused kernel that trains an attention mask (its flash
    # kernel takes none with gradients), so a rehearsal keeps the math kernel.
    backends = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION] + (
        [SDPBackend.CUDNN_ATTENTION] if device.type == 'cuda' else [SDPBackend.MATH])
    start = time.perf_counter()
    with sdpa_kernel(backends), record_sdpa_calls() as calls:
        logs = model.train_step(dict(inputs=x), optim)
    loss = float(logs['loss'])
    off = [c for c in calls if c['violations']]
    return dict(setting=setting, wrapper=type(optim).__name__, dtype=str(getattr(optim, 'cast_dtype', 'float32')),
                loss=loss, seconds=time.perf_counter() - start, sdpa_calls=len(calls), off_contract=len(off),
                first_violation=off[0]['violations'][0] if off else None,
                status='OK' if off == [] and loss == loss and abs(loss) != float('inf') else 'FAIL')


def _equivalence(batch: int = 2) -> Dict:
    """DyViT-B float32 outputs and parameter gradients, CUDA against CPU (TF32 off), per case."""
    import torch

    from coma.models import DyViT
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    cpu = DyViT('base')
    gpu = DyViT('base').cuda()
    gpu.load_state_dict(cpu.state_dict())
    g = torch.Generator().manual_seed(0)
    mask = torch.ones(batch, 49, dtype=torch.bool)
    for i in range(batch):
        mask[i, torch.randperm(49, generator=g)[:20]] = False
    cases = {'dense 224': (torch.randn(batch, 3, 224, 224, generator=g), None),
             'dense 256x320 (shifted windows)': (torch.randn(batch, 3, 256, 320, generator=g), None),
             'masked 224 (20 of 49 units)': (torch.randn(batch, 3, 224, 224, generator=g), mask.view(batch, 7, 7))}
    out = {}
    for name, (x, m) in cases.items():
        try:
            results = []
            for model, dev in ((cpu, 'cpu'), (gpu, 'cuda')):
                model.zero_grad()
                y = model(x.to(dev)) if m is None else (model.forward_masked(x.to(dev), m.to(dev), 20),)
                sum(t.square().mean() for t in y).backward()
                results.append(([t.detach().float().cpu() for t in y],
                                [p.grad.float().cpu() for p in model.parameters() if p.grad is not None]))

            def rel(a, b):
                return float((a - b).abs().max() / (b.abs().max() + 1e-12))
            err = max(max(rel(a, b) for a, b in zip(results[1][0], results[0][0])),
                      max(rel(a, b) for a, b in zip(results[1][1], results[0][1])))
            out[name] = dict(max_rel_error=err, status='OK' if err < 1e-5 else 'FAIL')
        except Exception as exc:  # noqa: BLE001  (report and go on with the next case)
            out[name] = dict(status='FAIL', error=f'{type(exc).__name__}: {str(exc)[:400]}')
    return out


def worker(spec: Dict) -> Dict:
    import json

    import torch

    import coma  # noqa: F401
    device = torch.device(spec['device'])
    row = dict(spec, steps={})
    for setting in STEPS:
        try:
            torch.manual_seed(0)
            row['steps'][setting] = _step(setting, device, spec['batch'])
        except Exception as exc:  # noqa: BLE001  (report and go on with the next check)
            row['steps'][setting] = dict(status='FAIL', error=f'{type(exc).__name__}: {str(exc)[:1500]}',
                                         where=traceback.format_exc(limit=-4)[-1500:])
        print(f"smoke {setting}: {row['steps'][setting]['status']}", flush=True)
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    if device.type == 'cuda':
        row['cuda_vs_cpu_fp32'] = _equivalence()
    verdicts = [s['status'] for s in row['steps'].values()] + [c['status'] for c in row.get('cuda_vs_cpu_fp32', {}).values()]
    row['smoke'] = 'OK' if all(v == 'OK' for v in verdicts) else 'FAIL'
    print(json.dumps(row))
    return row


if __name__ == '__main__':
    worker_main(worker)
