"""Backbone benchmark (``tools/benchmark_backbone.py``): DyViT against Swin, ViT-B/16 and Hiera.

Measures, each model in its own process:
* at 224x224: dense forward images/s, forward+backward images/s and peak memory;
* the masked forward at 40% visible (20 of 49 units) against the dense forward (DyViT's
  ``forward_masked``; timm Hiera's ``forward_features(mask=...)`` over its 32-px mask units);
* forward+backward peak memory at 1333x800 (batch 1): DyViT-T against mmdet's Swin-T, the
  backbone its Mask R-CNN uses.
Peak memory is the growth over the state after building the model and its input: peak RSS on CPU,
``torch.cuda.max_memory_allocated`` on CUDA.
Times are medians of ``--repeats`` runs after a warm-up.
``--compile`` adds, after the eager rows, every row again under ``torch.compile`` (default mode,
``dynamic=False``; ``fullgraph=True`` for DyViT, whose forwards compile as one graph), compiled
against compiled; its warm-up (the compilation) is reported as ``compile_s``.
Every 224x224 forward row also carries its ATen op count at batch 2 (``ops``, views included, and
``kernel_ops``, the calls that compute), counted under ``--amp`` when timed under it (its casts are
kernels too): a deterministic proxy of launches per forward.
The JSON records the machine's load when the run started (``machine_load``).
"""
from coma.benchmarks.common import compile_fn, emit_row, measure, run_rows, worker_main

MODULE = 'coma.benchmarks.backbone'
MODELS_224 = ['dyvit_tiny', 'dyvit_small', 'dyvit_base', 'swin_tiny_patch4_window7_224',
              'swin_small_patch4_window7_224', 'swin_base_patch4_window7_224', 'vit_base_patch16_224',
              'hiera_tiny_224', 'hiera_base_224']
MASKED = ['dyvit_tiny', 'dyvit_base', 'hiera_tiny_224', 'hiera_base_224']
VISIBLE_UNITS = 20  # of 49: the 40% CoMA's M_t sees at ratio 0.6


def build(name: str):
    import timm
    import coma  # noqa: F401  (registers dyvit_* in timm)
    if name == 'mmdet_swin_tiny':
        from mmdet.registry import MODELS
        return MODELS.build(dict(type='SwinTransformer', embed_dims=96, depths=[2, 2, 6, 2],
                                 num_heads=[3, 6, 12, 24], window_size=7, out_indices=(0, 1, 2, 3)))
    if name.startswith('dyvit'):
        return timm.create_model(name, features_only=True)
    return timm.create_model(name, num_classes=0)


def worker(spec):
    import torch

    from coma.analysis import count_aten_ops
    torch.manual_seed(0)
    device = torch.device(spec['device'])
    model = build(spec['model']).to(device)
    h, w = spec['size']
    x = torch.randn(spec['batch'], 3, h, w, device=device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=spec.get('amp', False))

    def reduce(out):
        outs = out if isinstance(out, (tuple, list)) else [out]
        return sum(o.float().mean() for o in outs)

    ours = spec['model'].startswith('dyvit')

    def masked_call(xb):
        g = torch.Generator().manual_seed(0)
        keep = torch.zeros(xb.shape[0], 49, dtype=torch.bool)
        for i in range(xb.shape[0]):
            keep[i, torch.randperm(49, generator=g)[:VISIBLE_UNITS]] = True
        keep = keep.to(device)
        if ours:  # the visible count is known, as in pre-training: static shapes, no host sync
            hidden = ~keep.view(-1, 7, 7)
            dyvit = getattr(model, 'model', model)  # timm's features_only wrapper keeps the DyViT in .model
            forward = compile_fn(dyvit.forward_masked, True) if spec.get('compile') else dyvit.forward_masked
            return lambda: forward(xb, hidden, VISIBLE_UNITS)
        forward = compile_fn(model.forward_features, False) if spec.get('compile') else model.forward_features
        return lambda: forward(xb, mask=keep)

    def dense_call(xb):
        forward = compile_fn(model, ours) if spec.get('compile') else model
        return lambda: forward(xb)

    if spec['mode'] == 'fwdbwd':
        model.train()
        call = dense_call(x)

        def fn():
            with amp:
                loss = reduce(call())
            loss.backward()
            model.zero_grad(set_to_none=True)
    else:
        model.eval()
        call = masked_call(x) if spec['mode'] == 'masked' else dense_call(x)

        def fn():
            with torch.no_grad(), amp:
                call()
    ops = {}
    if spec['mode'] in ('fwd', 'masked') and tuple(spec['size']) == (224, 224) and not spec.get('compile'):
        x2 = torch.randn(2, 3, 224, 224, device=device)
        small = masked_call(x2) if spec['mode'] == 'masked' else dense_call(x2)
        with torch.no_grad(), amp:  # counted as timed: under --amp its casts are kernels too
            small()
            counted = count_aten_ops(small)
        ops = dict(ops=counted.total, kernel_ops=counted.kernels)
    result = measure(fn, spec['repeats'], device, warmup=1 if spec.get('compile') else 0)
    if spec.get('compile'):  # torch.compile itself: a failure fails the row, nothing falls back to eager
        ops['ran_compiled'] = True
    return emit_row(spec, result, model, **ops, imgs_per_s=spec['batch'] / result['median_s'])


def run(args) -> dict:
    """Runs the benchmark that ``args`` (the tool's arguments) describe; returns the report."""
    common = dict(device=args.device, repeats=args.repeats, amp=args.amp)
    specs = [dict(common, model=name, mode=mode, size=(224, 224), batch=args.batch, compile=compiled)
             for name in args.models for mode in args.modes if mode != 'masked' or name in MASKED
             for compiled in ((False, True) if args.compile else (False,))]
    if not args.skip_detection_size:
        specs += [dict(common, model=name, mode='fwdbwd', size=(800, 1333), batch=1, repeats=max(2, args.repeats // 2))
                  for name in ('dyvit_tiny', 'mmdet_swin_tiny')]

    return run_rows(MODULE, specs, worker, summarise, args)


def summarise(rows):
    def get(model, mode, size=(224, 224), compiled=False):
        for r in rows:
            if (r['model'] == model and r['mode'] == mode and tuple(r['size']) == tuple(size)
                    and bool(r.get('compile')) == compiled and 'error' not in r):
                return r
        return None

    out = {}
    for compiled in (False, True):
        tag = ' (compiled)' if compiled else ''
        for model in MASKED:
            dense, masked = get(model, 'fwd', compiled=compiled), get(model, 'masked', compiled=compiled)
            if dense and masked:
                out[f'{model} masked/dense time{tag}'] = masked['median_s'] / dense['median_s']
        pairs = [('dyvit_base', 'vit_base_patch16_224', 'imgs_per_s', 'fwd'),
                 ('dyvit_base', 'hiera_base_224', 'imgs_per_s', 'fwd'),
                 ('dyvit_tiny', 'swin_tiny_patch4_window7_224', 'imgs_per_s', 'fwd'),
                 ('dyvit_tiny', 'swin_tiny_patch4_window7_224', 'imgs_per_s', 'fwdbwd')]
        for a, b, key, mode in pairs:
            ra, rb = get(a, mode, compiled=compiled), get(b, mode, compiled=compiled)
            if ra and rb:
                out[f'{a}/{b} {mode} {key}{tag}'] = ra[key] / rb[key]
    ra, rb = get('dyvit_tiny', 'fwdbwd', (800, 1333)), get('mmdet_swin_tiny', 'fwdbwd', (800, 1333))
    if ra and rb:
        out['1333x800 fwd+bwd peak memory dyvit_tiny/swin_tiny'] = ra['peak_mib'] / rb['peak_mib']
    return out


if __name__ == '__main__':
    worker_main(worker)
