"""Pre-training benchmark: seconds per iteration and peak memory, side by side in one run.

    python tools/benchmark_pretrain.py [--batch 8] [--repeats 5] [--device cpu|cuda] [--amp] [--json out.json]

One full training step (forward, backward, AdamW step; for CoMA also the frozen branch and the
M_{t-1} update) at 224x224 and the same batch, each setting in its own process:
* CoMA on DyViT-B (ratio 0.6), CoMA on ViT-B/16 (32-px units = 2x2 patches, ratio 0.6);
* MAE on ViT-B/16 at ratio 0.75 (MAE's recipe, per-patch masks) and 0.6;
* MAE on DyViT-B (ratio 0.6);
* MAE on timm's Hiera-T/B (ratio 0.6): Hiera's own masked encoder over its 32-px mask units, with
  our 8 x 512 decoder (timm has no Hiera decoder; Hiera's own MAE decoder also fuses stages).
All use the SPEC decoder (8 blocks x 512).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

DECODER = dict(type='CoMADecoder', embed_dim=512, depth=8, num_heads=16)
SETTINGS = {
    'coma_dyvit-b_r0.6': dict(type='CoMA', backbone=dict(type='DyViT', arch='base', out_indices=(3,)), mask_ratio=0.6),
    'mae_vit-b-p16_r0.75': dict(type='MAE', backbone=dict(type='ViT', arch='base', unit=16), mask_ratio=0.75),
    'mae_vit-b-p16_r0.6': dict(type='MAE', backbone=dict(type='ViT', arch='base', unit=16), mask_ratio=0.6),
    'coma_vit-b-p16_r0.6': dict(type='CoMA', backbone=dict(type='ViT', arch='base', unit=32), mask_ratio=0.6),
    'mae_dyvit-b_r0.6': dict(type='MAE', backbone=dict(type='DyViT', arch='base', out_indices=(3,)), mask_ratio=0.6),
    'mae_hiera-t_r0.6': dict(type='MAE', backbone=dict(type='HieraEncoder', name='hiera_tiny_224'), mask_ratio=0.6),
    'mae_hiera-b_r0.6': dict(type='MAE', backbone=dict(type='HieraEncoder', name='hiera_base_224'), mask_ratio=0.6),
}


def _register_hiera():
    import torch.nn as nn
    from mmengine.registry import MODELS

    class HieraEncoder(nn.Module):
        """timm Hiera with the ``forward_masked`` interface (its mask units are 32 px at 224)."""
        unit = 32

        def __init__(self, name):
            super().__init__()
            import timm
            self.model = timm.create_model(name, num_classes=0)
            self.unit_dim = self.model.num_features

        def forward_masked(self, x, mask):
            return self.model.forward_features(x, mask=~mask.flatten(1))  # timm: True = keep

    MODELS.register_module(module=HieraEncoder, force=True)


def worker(spec):
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS
    import coma  # noqa: F401
    from _bench import peak_rss_mib, time_median
    _register_hiera()
    torch.manual_seed(0)
    device = torch.device(spec['device'])
    model = MODELS.build(dict(SETTINGS[spec['setting']], decoder=DECODER)).to(device).train()
    wrapper = dict(type='AutoAmpOptimWrapper', dtype='bfloat16') if spec['amp'] else dict(type='OptimWrapper')
    wrapper.update(optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05))
    optim = build_optim_wrapper(model, wrapper)
    x = torch.randn(spec['batch'], 3, 224, 224, device=device)
    fn = lambda: model.train_step(dict(inputs=x), optim)  # noqa: E731
    # peak memory above the state right after building the model and its inputs: activations,
    # gradients and optimizer state of the training step
    if device.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = peak_rss_mib()
    result = time_median(fn, spec['repeats'], warmup=2)
    peak = (torch.cuda.max_memory_allocated() - base) / 2 ** 20 if device.type == 'cuda' else peak_rss_mib() - base
    row = dict(spec, **result, peak_mib=peak, params_m=sum(p.numel() for p in model.parameters()) / 1e6)
    print(json.dumps(row))
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--device', default='cpu')
    p.add_argument('--amp', action='store_true')
    p.add_argument('--settings', nargs='+', default=list(SETTINGS))
    p.add_argument('--json')
    p.add_argument('--worker', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(json.loads(args.worker))
    from _bench import device_name, run_worker
    rows = []
    for name in args.settings:
        rows.append(run_worker(os.path.abspath(__file__), dict(setting=name, batch=args.batch, repeats=args.repeats,
                                                               device=args.device, amp=args.amp), worker=worker))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != 'times_s'}), flush=True)
    ref = next((r for r in rows if r['setting'] == 'mae_vit-b-p16_r0.75' and 'error' not in r), None)
    summary = {}
    if ref:
        for r in rows:
            if 'error' not in r:
                summary[r['setting']] = dict(s_per_iter=r['median_s'], time_vs_mae_vit_b_0_75=r['median_s'] / ref['median_s'],
                                             peak_mib=r['peak_mib'], memory_vs_mae_vit_b_0_75=r['peak_mib'] / ref['peak_mib'])
    print(json.dumps(summary, indent=1))
    report = dict(device=device_name(), batch=args.batch, repeats=args.repeats, amp=args.amp, rows=rows, summary=summary)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)
    return report


if __name__ == '__main__':
    main()
