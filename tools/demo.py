"""The main job on embedded data: ``make demo`` runs it.

    python tools/demo.py [--stages card pretrain ...] [--work-dir work_dirs/demo] [--device cpu]

Stages (each skipped when its outputs exist; an interrupted training stage resumes from its last
checkpoint):
* ``card``: params/MACs table of every DyViT variant (mmengine's FlopAnalyzer, fused attention
  counted) and a dense forward of DyViT-T on a real photo (scikit-image's astronaut), saving a
  picture of the four feature maps.
* ``data``: the demo datasets (tools/make_demo_data.py).
* ``masks``: the paper's Figure 2 (per-unit masking frequency, random vs complementary).
* ``pretrain``: CoMA pre-training of DyViT-N on the demo image folder, its reconstruction picture,
  and the backbone checkpoint converted for downstream use.
* ``det``: Mask R-CNN (DyViT-N) from the CoMA checkpoint on the demo COCO data, evaluated with
  CocoMetric, with a prediction picture.
* ``seg``: UperNet (DyViT-N) from the CoMA checkpoint on the demo ADE20K data, evaluated with
  IoUMetric, with a prediction picture.
* ``det-scratch`` / ``seg-scratch``: the same from random initialisation, for comparison.
* ``report``: the final table.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
sys.path.insert(0, ROOT)
STAGES = ('card', 'data', 'masks', 'pretrain', 'det', 'seg', 'det-scratch', 'seg-scratch', 'report')
DET_CFG = 'mmdet_configs/dyvit/mask-rcnn_dyvit-n_fpn_demo.py'
SEG_CFG = 'mmseg_configs/dyvit/upernet_dyvit-n_demo.py'


def log(msg: str) -> None:
    print(f'[demo {time.strftime("%H:%M:%S")}] {msg}', flush=True)


def stage_card(work: str, device: str) -> dict:
    import numpy as np
    import torch
    import coma  # noqa: F401
    from coma.analysis import count_flops, count_params
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
    log(f'feature maps {[tuple(f.shape) for f in feats]} -> {out}')
    with open(osp.join(work, 'model_card.json'), 'w') as f:
        json.dump(rows, f, indent=1)
    return dict(variants=rows, picture=out, finite=bool(all(np.isfinite(f.cpu().numpy()).all() for f in feats)))


def run(cmd, **kw):
    log('$ ' + ' '.join(cmd))
    subprocess.run(cmd, check=True, cwd=ROOT, **kw)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--stages', nargs='+', default=list(STAGES), choices=STAGES)
    p.add_argument('--work-dir', default='work_dirs/demo')
    p.add_argument('--data-root', default='data/demo')
    p.add_argument('--device', default='cpu')
    p.add_argument('--force', action='store_true', help='rerun stages whose outputs exist')
    p.add_argument('--quick', action='store_true',
                   help='a few iterations per training stage: checks the whole pipeline in minutes (no learning)')
    args = p.parse_args(argv)
    work = osp.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    timings = {}
    for stage in args.stages:
        start = time.time()
        log(f'stage {stage}')
        done = osp.join(work, f'.{stage}.done')
        if osp.exists(done) and not args.force and stage != 'report':
            log(f'stage {stage}: already done ({done}); --force reruns it')
            continue
        STAGE_FUNCS[stage](args, work)
        timings[stage] = time.time() - start
        if stage != 'report':
            open(done, 'w').write(time.strftime('%Y-%m-%d %H:%M:%S'))
            times_path = osp.join(work, 'stage_times.json')
            times = json.load(open(times_path)) if osp.exists(times_path) else {}
            times[stage] = timings[stage]
            with open(times_path, 'w') as f:
                json.dump(times, f)
        log(f'stage {stage} finished in {timings[stage]:.0f} s')
    print('\nstage wall times (s):', json.dumps({k: round(v) for k, v in timings.items()}))


def _card(args, work):
    stage_card(work, args.device)


def _data(args, work):
    run([sys.executable, 'tools/make_demo_data.py', '--imagenet', osp.join(args.data_root, 'imagenet'),
         '--coco', osp.join(args.data_root, 'coco'), '--ade', osp.join(args.data_root, 'ade')])


def _masks(args, work):
    run([sys.executable, 'tools/visualize_masks.py', '--out', osp.join(work, 'mask_frequency.png')])


def _pretrain(args, work):
    cfg = 'imagenet_configs/coma_dyvit-n_1xb32-coslr-30e_demo.py'
    wd = osp.join(work, 'pretrain')
    resume = ['--resume'] if osp.exists(osp.join(wd, 'last_checkpoint')) else []
    quick = ['train_cfg.max_epochs=2', 'default_hooks.checkpoint.interval=1'] if getattr(args, 'quick', False) else []
    run([sys.executable, 'tools/train.py', cfg, '--work-dir', wd,
         '--cfg-options', f"train_dataloader.dataset.data_root={osp.join(args.data_root, 'imagenet')}", *quick]
        + resume)
    ckpt = open(osp.join(wd, 'last_checkpoint')).read().strip()
    image = osp.join(args.data_root, 'imagenet', 'val', 'chelsea', 'chelsea_0000.jpg')
    run([sys.executable, 'tools/visualize_reconstruction.py', ckpt, image, '--size', '128',
         '--out', osp.join(work, 'reconstruction.png')])
    run([sys.executable, 'tools/convert_checkpoint.py', ckpt, osp.join(work, 'dyvit-n_coma_backbone.pth')])


def latest_metrics(work_dir: str) -> dict:
    """The newest metrics json mmengine's test loop wrote under ``work_dir``."""
    found = [osp.join(r, f) for r, _, fs in os.walk(work_dir) for f in fs
             if f.endswith('.json') and f[:8].isdigit() and 'scalars' not in f]
    with open(sorted(found, key=osp.getmtime)[-1]) as f:
        return json.load(f)


def downstream(args, work, task: str, pretrained: bool) -> dict:
    """Trains and tests the demo detector or segmenter (resuming an interrupted run)."""
    cfg = DET_CFG if task == 'det' else SEG_CFG
    name = f'{task}-{"coma" if pretrained else "scratch"}'
    wd = osp.join(work, name)
    root = osp.join(args.data_root, 'coco' if task == 'det' else 'ade')
    opts = [f'{k}.dataset.data_root={root}' for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    if task == 'det':
        ann = osp.join(root, 'annotations', 'instances_val2017.json')
        opts += [f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}']
    if pretrained:
        opts.append(f"model.backbone.init_cfg.checkpoint={osp.join(work, 'dyvit-n_coma_backbone.pth')}")
    if getattr(args, 'quick', False):
        opts += (['train_cfg.max_epochs=1', 'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1']
                 if task == 'det' else ['train_cfg.max_iters=20', 'train_cfg.val_interval=20',
                                        'default_hooks.checkpoint.interval=20'])
    resume = ['--resume'] if osp.exists(osp.join(wd, 'last_checkpoint')) else []
    run([sys.executable, 'tools/train.py', cfg, '--work-dir', wd, '--cfg-options', *opts] + resume)
    ckpt = open(osp.join(wd, 'last_checkpoint')).read().strip()
    run([sys.executable, 'tools/test.py', cfg, ckpt, '--work-dir', osp.join(wd, 'test'),
         '--show-dir', osp.join(work, f'{name}_predictions'), '--cfg-options', *opts])
    metrics = latest_metrics(osp.join(wd, 'test'))
    with open(osp.join(work, f'{name}_metrics.json'), 'w') as f:
        json.dump(metrics, f, indent=1)
    log(f'{name}: {metrics}')
    return metrics


def _report(args, work):
    rows = []
    for name in ('det-coma', 'det-scratch', 'seg-coma', 'seg-scratch'):
        path = osp.join(work, f'{name}_metrics.json')
        if osp.exists(path):
            rows.append((name, json.load(open(path))))
    times = json.load(open(osp.join(work, 'stage_times.json'))) if osp.exists(osp.join(work, 'stage_times.json')) else {}
    print('\n| model (DyViT-N, demo data) | init | bbox mAP | segm mAP | mIoU |\n| --- | --- | --- | --- | --- |')
    for name, m in rows:
        task, init = name.split('-')
        fmt = lambda key: f'{m[key]:.3f}' if key in m else ''  # noqa: E731
        print(f"| {'Mask R-CNN' if task == 'det' else 'UperNet'} | {'CoMA pre-trained' if init == 'coma' else 'random'} | "
              f"{fmt('coco/bbox_mAP')} | {fmt('coco/segm_mAP')} | {fmt('mIoU')} |")
    print('\nstage wall times (s):', json.dumps({k: round(v) for k, v in times.items()}))


STAGE_FUNCS = dict(card=_card, data=_data, masks=_masks, pretrain=_pretrain,
                   det=lambda a, w: downstream(a, w, 'det', True), seg=lambda a, w: downstream(a, w, 'seg', True),
                   **{'det-scratch': lambda a, w: downstream(a, w, 'det', False),
                      'seg-scratch': lambda a, w: downstream(a, w, 'seg', False)},
                   report=_report)

if __name__ == '__main__':
    main()
