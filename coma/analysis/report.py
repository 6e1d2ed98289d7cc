"""The model card and the readers of downstream results behind the demo's report
(``tools/demo.py``): mmengine's metrics files, mean and sample std over seeds, the printed table."""
import json
import os
import os.path as osp
import statistics
from typing import Dict, List, Sequence


def model_card(work: str, device: str = 'cpu') -> dict:
    """Params/MACs of every DyViT variant (printed as a table, written to ``work/model_card.json``) and
    a dense forward of DyViT-T on a real photo (the four feature maps, pictured in
    ``work/dyvit_feature_maps.png``)."""
    import numpy as np
    import torch
    from coma.analysis.complexity import count_flops, count_params
    from coma.models.backbones.dyvit import ARCH_SETTINGS, DyViT
    rows = []
    x = torch.randn(1, 3, 224, 224)
    for arch in ARCH_SETTINGS:
        m = DyViT(arch)
        rows.append(dict(arch=arch, params_m=round(count_params(m) / 1e6, 2),
                         gmacs_224=round(count_flops(m, (x,)) / 1e9, 2), **{k: ARCH_SETTINGS[arch][k] for k in ('embed_dim', 'depths')}))
    print('\n| variant | width C | depths | params (M) | GMACs @224 |\n| --- | --- | --- | --- | --- |')
    for r in rows:
        print(f"| DyViT-{r['arch'][0].upper()} ({r['arch']}) | {r['embed_dim']} | {tuple(r['depths'])} | {r['params_m']} | {r['gmacs_224']} |")
    # dense forward on a real photo, four feature maps
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from skimage import data
    img = data.astronaut()  # 512x512 RGB
    t = torch.from_numpy(img).permute(2, 0, 1).float()[None]
    t = (t - torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)) / torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    torch.manual_seed(0)
    model = DyViT('tiny').eval().to(device)
    with torch.no_grad():
        feats = model(t.to(device))
    fig, axes = plt.subplots(1, 5, figsize=(17, 3.6))
    axes[0].imshow(img)
    axes[0].set_title('input 512x512')
    for ax, f, r in zip(axes[1:], feats, (4, 8, 16, 32)):
        ax.imshow(f[0].norm(dim=0).cpu().numpy(), cmap='viridis')
        ax.set_title(f'stride {r}: {tuple(f.shape[1:])}')
    for ax in axes:
        ax.axis('off')
    fig.suptitle('DyViT-T dense forward (random init): per-location feature norm of the 4 NCHW maps')
    out = osp.join(work, 'dyvit_feature_maps.png')
    fig.savefig(out, dpi=90, bbox_inches='tight')
    plt.close(fig)
    with open(osp.join(work, 'model_card.json'), 'w') as f:
        json.dump(rows, f, indent=1)
    return dict(variants=rows, picture=out, shapes=[tuple(f.shape) for f in feats],
                finite=bool(all(np.isfinite(f.cpu().numpy()).all() for f in feats)))


def latest_metrics(work_dir: str) -> dict:
    """The newest metrics json mmengine's test loop wrote under ``work_dir``."""
    found = [osp.join(r, f) for r, _, fs in os.walk(work_dir) for f in fs
             if f.endswith('.json') and f[:8].isdigit() and 'scalars' not in f]
    with open(sorted(found, key=osp.getmtime)[-1]) as f:
        return json.load(f)


#: (task, metric key in the metrics file, report name, scale to the report's unit)
METRICS = (('det', 'coco/bbox_mAP', 'bbox_mAP'), ('det', 'coco/segm_mAP', 'segm_mAP'), ('seg', 'mIoU', 'mIoU'))


def summarise(work: str, seeds: Sequence[int]) -> List[Dict]:
    """One row per (task, init, metric) with the mean and sample std over the seeds that finished
    (std None for a single seed: a sample std needs two)."""
    rows = []
    for task, key, metric in METRICS:
        for init in ('coma', 'mae', 'scratch'):
            got, values = [], []
            for seed in seeds:
                path = osp.join(work, f'seed{seed}', f'{task}-{init}_metrics.json')
                if osp.exists(path):
                    m = json.load(open(path))
                    if key in m:
                        got.append(seed)
                        values.append(float(m[key]))
            if values:
                rows.append(dict(task=task, init=init, metric=metric, mean=statistics.fmean(values),
                                 std=statistics.stdev(values) if len(values) > 1 else None, seeds=got, values=values))
    return rows


def print_results(rows: List[Dict], arch: str) -> None:
    """Prints :func:`summarise`'s rows as the demo's markdown table (``arch``: the backbone and data)."""
    names = dict(coma='CoMA pre-trained', mae='MAE pre-trained', scratch='random')
    print(f'\n| model ({arch}) | init | metric | mean ± std | seeds |\n| --- | --- | --- | --- | --- |')
    for r in rows:
        model = 'Mask R-CNN' if r['task'] == 'det' else 'UperNet'
        fmt = (lambda v: f'{v:.3f}') if r['metric'] != 'mIoU' else (lambda v: f'{v:.1f}')  # noqa: E731
        std = 'n/a (one seed)' if r['std'] is None else fmt(r['std'])
        print(f"| {model} | {names[r['init']]} | {r['metric']} | {fmt(r['mean'])} ± {std} | "
              f"{', '.join(map(str, r['seeds']))} ({', '.join(fmt(v) for v in r['values'])}) |")
