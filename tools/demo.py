"""The main job: ``make demo`` runs it on embedded data; ``--recipe full`` runs the real recipes.

    python tools/demo.py [--stages card pretrain ...] [--work-dir work_dirs/demo] [--device cpu]
        [--jobs 2] [--quick] [--force]
    python tools/demo.py --recipe full --data-root /data [--gpus 8]   # real ImageNet, COCO, ADE20K

Stages (each skipped when it has finished before; an interrupted training stage resumes from its
last checkpoint; ``--force`` reruns):
* ``card``: params/MACs table of every DyViT variant (mmengine's FlopAnalyzer, fused attention
  counted) and a dense forward of DyViT-T on a real photo (scikit-image's astronaut), saving a
  picture of the four feature maps.
* ``data``: the demo datasets (tools/make_demo_data.py); with ``--recipe full``, a check that
  ``DATA_ROOT/imagenet/{train,val}``, ``DATA_ROOT/coco/{annotations,train2017,val2017}`` and
  ``DATA_ROOT/ade/ADEChallengeData2016`` exist.
* ``masks``: the paper's Figure 2 (per-unit masking frequency, random vs complementary).
* ``pretrain``: CoMA pre-training (DyViT-N on the demo folder; DyViT-B on ImageNet with ``full``),
  its reconstruction picture, and the backbone checkpoint converted for downstream use.
* ``det``: Mask R-CNN from the CoMA checkpoint, evaluated with CocoMetric, prediction pictures.
* ``seg``: UperNet from the CoMA checkpoint, evaluated with IoUMetric, prediction pictures.
* ``det-scratch`` / ``seg-scratch``: the same from random initialisation, for comparison.
* ``report``: the final table (metrics with and without CoMA pre-training, wall time per stage).

With ``--jobs 2`` (the default) independent stages run side by side, one CPU thread each when
there is no GPU (the scratch stages do not wait for pre-training); each line of a stage's output is
prefixed with its name, and mmengine's logger prints each training stage's ETA.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import threading
import time

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
sys.path.insert(0, ROOT)
STAGES = ('card', 'data', 'masks', 'pretrain', 'det', 'seg', 'det-scratch', 'seg-scratch', 'report')
#: What each stage needs first (when both are selected).
DEPENDS = {'pretrain': ('data',), 'det': ('pretrain',), 'seg': ('pretrain',), 'det-scratch': ('data',),
           'seg-scratch': ('data',), 'report': STAGES[:-1]}
#: Start order among ready stages: the longest chains first.
PRIORITY = ('data', 'pretrain', 'det-scratch', 'det', 'seg-scratch', 'seg', 'card', 'masks', 'report')
RECIPES = {
    'demo': dict(pretrain='imagenet_configs/coma_dyvit-n_1xb32-coslr-20e_demo.py',
                 det='mmdet_configs/dyvit/mask-rcnn_dyvit-n_fpn_demo.py',
                 seg='mmseg_configs/dyvit/upernet_dyvit-n_demo.py', img_size=128),
    'full': dict(pretrain='imagenet_configs/coma_dyvit-b_8xb256-amp-coslr-800e_in1k.py',
                 det='mmdet_configs/dyvit/mask-rcnn_dyvit-b_fpn_1x_coco.py',
                 seg='mmseg_configs/dyvit/upernet_dyvit-b_8xb2-160k_ade20k-512x512.py', img_size=224),
}


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


def _recipe(args) -> dict:
    return RECIPES[getattr(args, 'recipe', 'demo')]


def _train_cmd(args, cfg: str, *rest: str) -> list:
    """``tools/train.py`` (or test.py) in one process, or under torchrun with ``--gpus N``."""
    gpus = getattr(args, 'gpus', 0) or 0
    if gpus > 1:
        return [sys.executable, '-m', 'torch.distributed.run', '--nproc-per-node', str(gpus), *rest[:1], cfg,
                *rest[1:], '--launcher', 'pytorch']
    return [sys.executable, *rest[:1], cfg, *rest[1:]]


def run(cmd, **kw):
    log('$ ' + ' '.join(cmd))
    subprocess.run(cmd, check=True, cwd=ROOT, **kw)


def _card(args, work):
    stage_card(work, args.device)


def _data(args, work):
    if getattr(args, 'recipe', 'demo') == 'full':
        need = [osp.join(args.data_root, p) for p in ('imagenet/train', 'imagenet/val', 'coco/annotations',
                                                      'coco/train2017', 'coco/val2017', 'ade/ADEChallengeData2016')]
        missing = [p for p in need if not osp.isdir(p)]
        if missing:
            raise FileNotFoundError(f'--recipe full: missing dataset folders {missing} under --data-root '
                                    f'{args.data_root} (see the README for the layouts)')
        return
    run([sys.executable, 'tools/make_demo_data.py', '--imagenet', osp.join(args.data_root, 'imagenet'),
         '--coco', osp.join(args.data_root, 'coco'), '--ade', osp.join(args.data_root, 'ade')])


def _masks(args, work):
    run([sys.executable, 'tools/visualize_masks.py', '--out', osp.join(work, 'mask_frequency.png')])


def _pretrain(args, work):
    recipe = _recipe(args)
    wd = osp.join(work, 'pretrain')
    resume = ['--resume'] if osp.exists(osp.join(wd, 'last_checkpoint')) else []
    quick = ['train_cfg.max_epochs=2', 'default_hooks.checkpoint.interval=1'] if getattr(args, 'quick', False) else []
    run(_train_cmd(args, recipe['pretrain'], 'tools/train.py', '--work-dir', wd, '--cfg-options',
                   f"train_dataloader.dataset.data_root={osp.join(args.data_root, 'imagenet')}", *quick, *resume))
    ckpt = open(osp.join(wd, 'last_checkpoint')).read().strip()
    val = osp.join(args.data_root, 'imagenet', 'val')
    cls = sorted(os.listdir(val))[0]
    image = osp.join(val, cls, sorted(os.listdir(osp.join(val, cls)))[0])
    run([sys.executable, 'tools/visualize_reconstruction.py', ckpt, image, '--size', str(recipe['img_size']),
         '--out', osp.join(work, 'reconstruction.png')])
    run([sys.executable, 'tools/convert_checkpoint.py', ckpt, osp.join(work, 'dyvit_coma_backbone.pth')])


def latest_metrics(work_dir: str) -> dict:
    """The newest metrics json mmengine's test loop wrote under ``work_dir``."""
    found = [osp.join(r, f) for r, _, fs in os.walk(work_dir) for f in fs
             if f.endswith('.json') and f[:8].isdigit() and 'scalars' not in f]
    with open(sorted(found, key=osp.getmtime)[-1]) as f:
        return json.load(f)


def downstream(args, work, task: str, pretrained: bool) -> dict:
    """Trains and tests the detector or segmenter of the recipe (resuming an interrupted run)."""
    recipe = getattr(args, 'recipe', 'demo')
    cfg = RECIPES[recipe][task]
    name = f'{task}-{"coma" if pretrained else "scratch"}'
    wd = osp.join(work, name)
    root = osp.join(args.data_root, 'coco' if task == 'det' else 'ade')
    if task == 'seg' and recipe == 'full':
        root = osp.join(root, 'ADEChallengeData2016')
    opts = [f'{k}.dataset.data_root={root}' for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    if task == 'det':
        ann = osp.join(root, 'annotations', 'instances_val2017.json')
        opts += [f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}']
    if pretrained:
        opts.append(f"model.backbone.init_cfg.checkpoint={osp.join(work, 'dyvit_coma_backbone.pth')}")
    if getattr(args, 'quick', False):
        opts += (['train_cfg.max_epochs=1', 'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1']
                 if task == 'det' else ['train_cfg.max_iters=20', 'train_cfg.val_interval=20',
                                        'default_hooks.checkpoint.interval=20'])
    resume = ['--resume'] if osp.exists(osp.join(wd, 'last_checkpoint')) else []
    run(_train_cmd(args, cfg, 'tools/train.py', '--work-dir', wd, '--cfg-options', *opts, *resume))
    ckpt = open(osp.join(wd, 'last_checkpoint')).read().strip()
    run(_train_cmd(args, cfg, 'tools/test.py', ckpt, '--work-dir', osp.join(wd, 'test'),
                   '--show-dir', osp.join(work, f'{name}_predictions'), '--cfg-options', *opts))
    metrics = latest_metrics(osp.join(wd, 'test'))
    with open(osp.join(work, f'{name}_metrics.json'), 'w') as f:
        json.dump(metrics, f, indent=1)
    log(f'{name}: {metrics}')
    return metrics


def stage_seconds(work: str) -> dict:
    """Wall time of each finished stage, from its ``.<stage>.done`` marker."""
    out = {}
    for stage in STAGES:
        path = osp.join(work, f'.{stage}.done')
        if osp.exists(path):
            try:
                out[stage] = json.load(open(path))['seconds']
            except (ValueError, KeyError, TypeError):
                pass  # a marker from an older version: finished, time unknown
    return out


def _report(args, work):
    rows = []
    for name in ('det-coma', 'det-scratch', 'seg-coma', 'seg-scratch'):
        path = osp.join(work, f'{name}_metrics.json')
        if osp.exists(path):
            rows.append((name, json.load(open(path))))
    arch = 'DyViT-N, demo data' if getattr(args, 'recipe', 'demo') == 'demo' else 'DyViT-B, COCO / ADE20K'
    print(f'\n| model ({arch}) | init | bbox mAP | segm mAP | mIoU |\n| --- | --- | --- | --- | --- |')
    for name, m in rows:
        task, init = name.split('-')
        fmt = lambda key: f'{m[key]:.3f}' if key in m else ''  # noqa: E731
        print(f"| {'Mask R-CNN' if task == 'det' else 'UperNet'} | {'CoMA pre-trained' if init == 'coma' else 'random'} | "
              f"{fmt('coco/bbox_mAP')} | {fmt('coco/segm_mAP')} | {fmt('mIoU')} |")
    times = stage_seconds(work)
    print('\n| stage | wall time (s) |\n| --- | --- |')
    for stage, sec in times.items():
        print(f'| {stage} | {sec:.0f} |')
    wall = osp.join(work, 'wall.json')
    if osp.exists(wall):
        print(f"\nthis invocation, start to end: {json.load(open(wall))['seconds'] / 60:.1f} min "
              f"({json.load(open(wall))['jobs']} stages at a time)")


STAGE_FUNCS = dict(card=_card, data=_data, masks=_masks, pretrain=_pretrain,
                   det=lambda a, w: downstream(a, w, 'det', True), seg=lambda a, w: downstream(a, w, 'seg', True),
                   **{'det-scratch': lambda a, w: downstream(a, w, 'det', False),
                      'seg-scratch': lambda a, w: downstream(a, w, 'seg', False)},
                   report=_report)


def run_stage(args, work: str, stage: str) -> None:
    """Runs one stage in this process and marks it done with its wall time."""
    start = time.time()
    log(f'stage {stage}')
    STAGE_FUNCS[stage](args, work)
    seconds = time.time() - start
    if stage != 'report':
        with open(osp.join(work, f'.{stage}.done'), 'w') as f:
            json.dump(dict(finished=time.strftime('%Y-%m-%d %H:%M:%S'), seconds=round(seconds, 1)), f)
    log(f'stage {stage} finished in {seconds:.0f} s')


def _child_argv(args, stage: str) -> list:
    argv = [sys.executable, osp.abspath(__file__), '--stages', stage, '--jobs', '1', '--work-dir', args.work_dir,
            '--data-root', args.data_root, '--device', args.device, '--recipe', args.recipe, '--gpus', str(args.gpus)]
    return argv + (['--quick'] if args.quick else []) + (['--force'] if args.force else [])


def _pump(proc: subprocess.Popen, stage: str) -> None:
    for line in proc.stdout:
        print(f'[{stage}] {line}', end='', flush=True)


def run_parallel(args, work: str, todo: list) -> None:
    """Runs ``todo`` as child processes, ``args.jobs`` at a time, respecting :data:`DEPENDS`."""
    env = dict(os.environ)
    if args.device == 'cpu':  # share the cores instead of oversubscribing them
        env['OMP_NUM_THREADS'] = str(max(1, (os.cpu_count() or 1) // args.jobs))
    running, done, failed = {}, set(), []
    while todo or running:
        for stage in sorted(todo, key=PRIORITY.index):
            if len(running) >= args.jobs or failed:
                break
            if any(d in todo or d in running for d in DEPENDS.get(stage, ())):
                continue
            proc = subprocess.Popen(_child_argv(args, stage), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, bufsize=1)
            thread = threading.Thread(target=_pump, args=(proc, stage), daemon=True)
            thread.start()
            running[stage] = (proc, thread)
            todo.remove(stage)
        time.sleep(0.5)
        for stage, (proc, thread) in list(running.items()):
            if proc.poll() is not None:
                thread.join()
                del running[stage]
                (done.add(stage) if proc.returncode == 0 else failed.append((stage, proc.returncode)))
        if failed and not running:
            break
    if failed:
        raise SystemExit(f'demo: stage(s) {failed} failed (their output is above, prefixed with their name); '
                         f'rerun the same command to resume: finished stages are skipped')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--stages', nargs='+', default=list(STAGES), choices=STAGES)
    p.add_argument('--work-dir', default='work_dirs/demo')
    p.add_argument('--data-root', default='data/demo',
                   help='demo data (generated here) or, with --recipe full, real imagenet/ coco/ ade/')
    p.add_argument('--recipe', choices=sorted(RECIPES), default='demo',
                   help='demo: DyViT-N on embedded data; full: the DyViT-B configs on real datasets')
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    p.add_argument('--gpus', type=int, default=0, help='with N > 1, training and testing run under torchrun')
    p.add_argument('--jobs', type=int, default=2, help='stages at a time (independent stages only)')
    p.add_argument('--force', action='store_true', help='rerun stages that have finished')
    p.add_argument('--quick', action='store_true',
                   help='a few iterations per training stage: checks the whole pipeline in minutes (no learning)')
    args = p.parse_args(argv)
    work = osp.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    start = time.time()
    todo = []
    for stage in args.stages:
        if osp.exists(osp.join(work, f'.{stage}.done')) and not args.force:
            log(f'stage {stage}: finished before ({osp.join(work, f".{stage}.done")}); --force reruns it')
        elif stage != 'report':
            todo.append(stage)
    if args.jobs > 1 and len(todo) > 1:
        run_parallel(args, work, todo)
    else:
        for stage in todo:
            run_stage(args, work, stage)
    if len(todo) > 1:
        with open(osp.join(work, 'wall.json'), 'w') as f:
            json.dump(dict(seconds=round(time.time() - start, 1), jobs=args.jobs), f)
    if 'report' in args.stages:
        run_stage(args, work, 'report')


if __name__ == '__main__':
    main()
