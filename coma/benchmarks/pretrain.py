"""Pre-training benchmark (``tools/benchmark_pretrain.py``): seconds per iteration and peak memory.

One full training step (forward, backward, AdamW step; for CoMA also the frozen branch and the
M_{t-1} update) at 224x224 and the same batch, each setting in its own process:
* CoMA on DyViT-B (ratio 0.6), CoMA on ViT-B/16 (32-px units = 2x2 patches, ratio 0.6);
* MAE on ViT-B/16 at ratio 0.75 (MAE's recipe, per-patch masks) and 0.6;
* MAE on DyViT-B (ratio 0.6);
* MAE on timm's Hiera-T/B (ratio 0.6): Hiera's own masked encoder over its 32-px mask units, with
  our 8 x 512 decoder (timm has no Hiera decoder; Hiera's own MAE decoder also fuses stages).
All use the SPEC decoder (8 blocks x 512).
``--compile`` adds, after the eager rows, every setting again with ``compile=True`` (the encoders'
masked forward and the decoders under ``torch.compile``, default mode, ``dynamic=False``;
``fullgraph=True`` except for Hiera, whose masked forward has graph breaks). Every eager row also
carries the ATen op count of one training step at batch 2 (``ops``, ``kernel_ops`` without views).
The JSON records the machine's load when the run started.
"""
from coma.benchmarks.common import emit_row, measure, run_rows, worker_main

MODULE = 'coma.benchmarks.pretrain'
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

        def forward_masked(self, x, mask, num_visible=None):
            return self.model.forward_features(x, mask=~mask.flatten(1))  # timm: True = keep

    MODELS.register_module(module=HieraEncoder, force=True)


def worker(spec):
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS
    import coma  # noqa: F401
    from coma.analysis import count_aten_ops
    _register_hiera()
    torch.manual_seed(0)
    device = torch.device(spec['device'])
    cfg = dict(SETTINGS[spec['setting']], decoder=DECODER)
    if spec.get('compile'):
        cfg['compile'] = dict(fullgraph=False) if 'hiera' in spec['setting'] else True
    model = MODELS.build(cfg).to(device).train()
    wrapper = dict(type='AutoAmpOptimWrapper', dtype='bfloat16') if spec['amp'] else dict(type='OptimWrapper')
    wrapper.update(optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05))
    optim = build_optim_wrapper(model, wrapper)
    x = torch.randn(spec['batch'], 3, 224, 224, device=device)
    fn = lambda: model.train_step(dict(inputs=x), optim)  # noqa: E731
    # peak memory above the state right after building the model and its inputs: activations,
    # gradients and optimizer state of the training step
    result = measure(fn, spec['repeats'], device, warmup=1)
    ops = {}
    if spec.get('compile'):  # a compiled row that fell back to eager says so
        from coma.models.utils.compile import compile_fallbacks
        fallbacks = compile_fallbacks(model)
        ops = dict(ran_compiled=not fallbacks, **(dict(fallback=fallbacks) if fallbacks else {}))
    else:  # one step at batch 2 (forward, backward, AdamW), after the timing
        x2 = torch.randn(2, 3, 224, 224, device=device)
        model.train_step(dict(inputs=x2), optim)
        counted = count_aten_ops(lambda: model.train_step(dict(inputs=x2), optim))
        ops = dict(ops=counted.total, kernel_ops=counted.kernels)
    return emit_row(spec, result, model, **ops)


def run(args) -> dict:
    """Runs the benchmark that ``args`` (the tool's arguments) describe; returns the report."""
    specs = [dict(setting=name, batch=args.batch, repeats=args.repeats, device=args.device, amp=args.amp,
                  compile=compiled)
             for name in args.settings for compiled in ((False, True) if args.compile else (False,))]

    return run_rows(MODULE, specs, worker, summarise, args)


def summarise(rows):
    """Each row's time and peak memory against MAE on ViT-B/16 at ratio 0.75 and its time against
    0.6, where those rows ran; eager against eager and compiled against compiled."""
    summary = {}
    for compiled in (False, True):
        ref = next((r for r in rows if r['setting'] == 'mae_vit-b-p16_r0.75' and bool(r.get('compile')) == compiled
                    and 'error' not in r), None)
        ref6 = next((r for r in rows if r['setting'] == 'mae_vit-b-p16_r0.6' and bool(r.get('compile')) == compiled
                     and 'error' not in r), None)
        for r in rows:
            if (ref or ref6) and 'error' not in r and bool(r.get('compile')) == compiled:
                entry = summary[r['setting'] + (' (compiled)' if compiled else '')] = dict(
                    s_per_iter=r['median_s'], peak_mib=r['peak_mib'])
                if ref:
                    entry.update(time_vs_mae_vit_b_0_75=r['median_s'] / ref['median_s'],
                                 memory_vs_mae_vit_b_0_75=r['peak_mib'] / ref['peak_mib'])
                if ref6:
                    entry['time_vs_mae_vit_b_0_6'] = r['median_s'] / ref6['median_s']
    return summary


if __name__ == '__main__':
    worker_main(worker)
