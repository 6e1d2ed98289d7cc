"""The real-data pre-training efficiency study: CoMA against MAE on DyViT-N (issue 6).

    python tools/study_efficiency.py [--epochs 16] [--seeds 0 1 2] [--jobs 2] [--work-dir work_dirs/study]
        [--results docs/results.md]
    python tools/study_efficiency.py --smoke            # 1 epoch, 1 seed: the check CI runs

Data: ``tools/make_demo_data.py --imagenet``, i.e. crops of 10 of scikit-image's bundled photos,
labelled by source photo (400 train / 100 val, 128 px; val crops come from a held-out strip of
each photo). Real photographs, no download.

Protocol, for each method (CoMA, MAE), seed and pre-training budget b in {E/8, E/4, E/2, E}:
1. pre-train DyViT-N for b epochs through the mmengine Runner with the demo configs
   (``imagenet_configs/{coma,mae}_dyvit-n_1xb32-coslr-20e_demo.py``), identical except for the
   algorithm: same data, batch, mask ratio, optimizer, a schedule of b epochs (warm-up b/8), the
   Runner seed and the mask seed = seed;
2. convert the checkpoint (``tools/convert_checkpoint.py``);
3. linear probe: frozen backbone, features of the centre crops (and their mirror images) of the
   train split, the linear-probe demo config's head (BatchNorm without affine + linear) trained on
   them with SGD, top-1 on val;
4. short fine-tune through the Runner for ``--ft-epochs`` epochs, top-1 on val: the fine-tune demo
   config (layer decay, drop path, label smoothing, AdamW + cosine) without RandAugment, mixup,
   cutmix and random erasing (``--ft-recipe light``, the default; ``full`` keeps them).
A random initialisation (b = 0) is evaluated the same way, per seed. Every part of a job
(pre-training, linear probe, fine-tune) stores its result as JSON, so a rerun skips what has
finished. Jobs run ``--jobs`` at a time, one thread each.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Optional

from mmengine.config import DictAction

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.join(ROOT, 'tools'))

PRETRAIN_CFG = {m: osp.join(ROOT, 'imagenet_configs', f'{m}_dyvit-n_1xb32-coslr-20e_demo.py') for m in ('coma', 'mae')}
FINETUNE_CFG = osp.join(ROOT, 'imagenet_configs', 'finetune_dyvit-n_1xb32-coslr-10e_demo.py')
LINPROBE_CFG = osp.join(ROOT, 'imagenet_configs', 'linprobe_dyvit-n_1xb32-coslr-20e_demo.py')
LINPROBE_EPOCHS = 100  # on cached features: a few seconds
LINPROBE_LR = 0.1


def log(msg: str) -> None:
    print(f'[study {time.strftime("%H:%M:%S")}] {msg}', flush=True)


def _schedule(epochs: int) -> List[Dict]:
    """Linear warm-up over ``epochs / 8`` (at least one epoch when there are two or more), then cosine."""
    warm = max(1, epochs // 8) if epochs > 1 else 0
    sched = [dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warm, convert_to_iter_based=True)] \
        if warm else []
    return sched + [dict(type='CosineAnnealingLR', T_max=epochs - warm, eta_min=1e-6, by_epoch=True, begin=warm,
                         end=epochs, convert_to_iter_based=True)]


def _runner_cfg(base: str, work_dir: str, data_root: str, epochs: int, seed: int, extra: Optional[Dict] = None):
    from mmengine.config import Config
    cfg = Config.fromfile(base)
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=seed, deterministic=False)
    cfg.param_scheduler = _schedule(epochs)
    cfg.train_cfg.max_epochs = epochs
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(key):
            cfg[key].dataset.data_root = data_root
            cfg[key].num_workers = 0
            cfg[key].persistent_workers = False
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=epochs, max_keep_ckpts=1, save_last=True)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=10)
    cfg.log_level = 'WARNING'  # the study prints one line per job; each run's log stays in its work dir
    cfg.merge_from_dict(extra or {})
    return cfg


def pretrain(method: str, seed: int, epochs: int, data_root: str, work_dir: str,
             options: Optional[Dict] = None) -> str:
    """Pre-trains DyViT-N with ``method`` for ``epochs``; returns the converted backbone checkpoint."""
    from mmengine.runner import Runner
    from convert_checkpoint import convert
    out = osp.join(work_dir, 'backbone.pth')
    if osp.isfile(out):
        return out
    cfg = _runner_cfg(PRETRAIN_CFG[method], work_dir, data_root, epochs, seed,
                      dict(model=dict(mask_seed=seed), train_dataloader=dict(dataset=dict(data_prefix=dict(img_path='train')))))
    cfg.merge_from_dict(options or {})  # ablations, e.g. model.norm_pix=False
    Runner.from_cfg(cfg).train()
    convert(osp.join(work_dir, f'epoch_{epochs}.pth'), out)
    return out


def _features(model, dataset, flip: bool):
    import torch
    feats, labels = [], []
    with torch.no_grad():
        for i in range(0, len(dataset), 50):
            items = [dataset[j] for j in range(i, min(i + 50, len(dataset)))]
            data = model.data_preprocessor(dict(inputs=[d['inputs'] for d in items],
                                                data_samples=[d['data_samples'] for d in items]))
            x = data['inputs']
            feats.append(model.extract_feat(x.flip(-1) if flip else x))
            labels += [int(d['data_samples'].gt_label) for d in items]
    return torch.cat(feats), torch.tensor(labels)


def linear_probe(backbone_ckpt: Optional[str], seed: int, data_root: str) -> float:
    """Top-1 (%) of a BatchNorm + linear head trained on frozen features (train: crops + mirrors)."""
    import torch
    import torch.nn.functional as F
    from mmengine.config import Config
    from mmengine.registry import DATASETS, MODELS
    from coma.evaluation import topk_accuracy
    cfg = Config.fromfile(LINPROBE_CFG)
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=backbone_ckpt)
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    splits = {}
    for split in ('train', 'val'):
        ds_cfg = dict(cfg.val_dataloader.dataset, data_root=data_root, data_prefix=dict(img_path=split))
        splits[split] = DATASETS.build(ds_cfg)
    xtr, ytr = _features(model, splits['train'], flip=False)
    xtr_f, _ = _features(model, splits['train'], flip=True)
    xtr, ytr = torch.cat([xtr, xtr_f]), torch.cat([ytr, ytr])
    xva, yva = _features(model, splits['val'], flip=False)
    head = model.head
    head.train()
    opt = torch.optim.SGD(head.parameters(), lr=LINPROBE_LR, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, LINPROBE_EPOCHS)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(LINPROBE_EPOCHS):
        for idx in torch.randperm(len(xtr), generator=gen).split(64):
            loss = F.cross_entropy(head(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    head.eval()
    with torch.no_grad():
        return topk_accuracy(head(xva), yva, (1,))[1]


#: Short fine-tuning recipes. ``full``: the fine-tune demo config as it is (RandAugment, mixup,
#: cutmix, random erasing: regularisers made for 100-epoch schedules); ``light``: the same without
#: them (label smoothing, drop path and layer decay stay), which learns within a few epochs.
FT_RECIPES = {
    'full': {},
    'light': dict(model=dict(mixup=None, random_erasing=None),
                  train_dataloader=dict(dataset=dict(pipeline=[
                      dict(type='LoadImage', skip_corrupt=False),
                      dict(type='RandomResizedCrop', size=128, scale=(0.25, 1.0)),
                      dict(type='RandomHorizontalFlip', prob=0.5),
                      dict(type='PackInputs')]))),
}


def finetune(backbone_ckpt: Optional[str], seed: int, epochs: int, data_root: str, work_dir: str,
             recipe: str = 'light') -> float:
    """Top-1 (%) on val after ``epochs`` of a short fine-tune (see :data:`FT_RECIPES`) through the Runner."""
    from mmengine.runner import Runner
    extra = dict(model=dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=backbone_ckpt))),
                 train_cfg=dict(val_interval=epochs + 1))
    cfg = _runner_cfg(FINETUNE_CFG, work_dir, data_root, epochs, seed, extra)
    cfg.merge_from_dict(FT_RECIPES[recipe])
    runner = Runner.from_cfg(cfg)
    runner.train()
    return float(runner.val_loop.run()['accuracy/top1'])


def _cached(path: str, compute):
    """``compute()``'s value, stored as JSON in ``path`` (a rerun reads it instead)."""
    if osp.isfile(path):
        with open(path) as f:
            return json.load(f)
    value = compute()
    with open(path, 'w') as f:
        json.dump(value, f)
    return value


def job(method: str, seed: int, epochs: int, args: Dict) -> Dict:
    """One (method, seed, budget): pre-train (unless epochs == 0), linear probe, fine-tune; each part cached."""
    import torch
    torch.set_num_threads(1)
    work = osp.join(args['work_dir'], f'{method}_s{seed}_e{epochs}')
    os.makedirs(work, exist_ok=True)

    def timed(fn, *a):
        start = time.time()
        return dict(value=fn(*a), seconds=round(time.time() - start, 1))
    pre = _cached(osp.join(work, 'pretrain.json'), lambda: timed(
        pretrain, method, seed, epochs, args['data_root'], osp.join(work, 'pretrain'), args['pretrain_options'])
        if epochs else
        dict(value=None, seconds=0.0))
    lp = _cached(osp.join(work, 'linprobe.json'), lambda: timed(linear_probe, pre['value'], seed, args['data_root']))
    ft_name = f"finetune_{args['ft_recipe']}_{args['ft_epochs']}e"
    ft = _cached(osp.join(work, f'{ft_name}.json'), lambda: timed(
        finetune, pre['value'], seed, args['ft_epochs'], args['data_root'], osp.join(work, ft_name), args['ft_recipe'])
    ) if args['ft_epochs'] else dict(value=float('nan'), seconds=0.0)
    return dict(method=method, seed=seed, epochs=epochs, linprobe_top1=lp['value'], finetune_top1=ft['value'],
                pretrain_s=pre['seconds'], linprobe_s=lp['seconds'], finetune_s=ft['seconds'])


def _init_worker() -> None:
    os.environ['OMP_NUM_THREADS'] = '1'
    import coma  # noqa: F401


def _mean_std(values: List[float]) -> str:
    if all(v != v for v in values):  # NaN: not measured (--ft-epochs 0)
        return '—'
    if len(values) == 1:
        return f'{values[0]:.1f}'
    return f'{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}'


def report(results: List[Dict], args: argparse.Namespace, wall_s: float) -> str:
    """The markdown table (mean ± std over seeds) and the plot; returns the markdown."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    budgets = sorted({r['epochs'] for r in results})
    methods = [m for m in ('coma', 'mae', 'random') if any(r['method'] == m for r in results)]
    ft = f'fine-tune top-1 (%, {args.ft_recipe} recipe, {args.ft_epochs} ep)'
    lines = [f'| method | pre-training epochs | linear probe top-1 (%) | {ft} | pre-train time / run (s) |',
             '| --- | --- | --- | --- | --- |']
    curves = {}
    for m in methods:
        for b in budgets:
            rows = [r for r in results if r['method'] == m and r['epochs'] == b]
            if not rows:
                continue
            lp, ft = [r['linprobe_top1'] for r in rows], [r['finetune_top1'] for r in rows]
            t = statistics.median(r['pretrain_s'] for r in rows)
            label = {'coma': 'CoMA', 'mae': 'MAE', 'random': 'random init'}[m]
            lines.append(f'| {label} | {b} | {_mean_std(lp)} | {_mean_std(ft)} | {t:.0f} |')
            sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731  (as in the table)
            curves.setdefault(m, []).append((b, statistics.mean(lp), sd(lp), statistics.mean(ft), sd(ft)))
    table = '\n'.join(lines)
    if args.plot:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, (k, title) in zip(axes, ((1, 'linear probe'), (3, f'{args.ft_epochs}-epoch fine-tune ({args.ft_recipe})'))):
            for m, pts in curves.items():
                if m == 'random':
                    ax.axhline(pts[0][k], color='grey', ls='--', label='random init')
                    continue
                xs = [p[0] for p in pts]
                ax.errorbar(xs, [p[k] for p in pts], yerr=[p[k + 1] for p in pts], marker='o', capsize=3,
                            label={'coma': 'CoMA', 'mae': 'MAE'}[m])
            ax.set_xscale('log', base=2)
            ax.set_xticks(budgets[1:] if budgets[0] == 0 else budgets, [str(b) for b in budgets if b])
            ax.set_xlabel('pre-training epochs')
            ax.set_ylabel(f'val top-1 (%), mean ± std over {len(args.seeds)} seeds')
            ax.set_title(f'DyViT-N, {title}')
            ax.legend()
        fig.tight_layout()
        os.makedirs(osp.dirname(osp.abspath(args.plot)), exist_ok=True)
        fig.savefig(args.plot, dpi=100)
    return table + (f'\n\nWall time of this invocation: {wall_s / 60:.1f} min ({args.jobs} jobs at a time, 1 thread each; '
                    f'parts finished by an earlier invocation were read from their JSON, not rerun).')


def main(argv=None) -> List[Dict]:
    p = argparse.ArgumentParser(description='CoMA vs MAE pre-training efficiency on real photos (DyViT-N)')
    p.add_argument('--epochs', type=int, default=16, help='E: the largest pre-training budget')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--ft-epochs', type=int, help='epochs of the short fine-tune (default 4; 0: none)')
    p.add_argument('--ft-recipe', choices=sorted(FT_RECIPES), default='light',
                   help='short fine-tune recipe (see FT_RECIPES)')
    p.add_argument('--jobs', type=int, default=2, help='jobs at a time (one thread each)')
    p.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'study'))
    p.add_argument('--data-root', help='an ImageNet-style folder; default: generated demo photos')
    p.add_argument('--results', help='write the table here (markdown)')
    p.add_argument('--plot', help='write the accuracy-vs-epochs plot here (PNG)')
    p.add_argument('--smoke', action='store_true', help='1 epoch, 1 seed, 1 fine-tune epoch (CI check)')
    p.add_argument('--budgets', type=int, nargs='+', help='pre-training budgets instead of E/8, E/4, E/2, E')
    p.add_argument('--methods', nargs='+', choices=['coma', 'mae', 'random'], default=['coma', 'mae', 'random'])
    p.add_argument('--pretrain-options', nargs='+', action=DictAction, default={},
                   help='config overrides of the pre-training runs (ablations), e.g. model.norm_pix=False; '
                        'use a separate --work-dir')
    args = p.parse_args(argv)
    if args.smoke:
        args.epochs, args.seeds = 1, args.seeds[:1]
        args.ft_epochs = 1 if args.ft_epochs is None else args.ft_epochs
    args.ft_epochs = 4 if args.ft_epochs is None else args.ft_epochs
    budgets = args.budgets or sorted({max(1, args.epochs // d) for d in (8, 4, 2, 1)})
    data_root = args.data_root or osp.join(args.work_dir, 'data')
    if not args.data_root and not osp.isdir(osp.join(data_root, 'val')):
        from make_demo_data import make_imagenet
        make_imagenet(data_root)
    shared = dict(work_dir=args.work_dir, data_root=data_root, ft_epochs=args.ft_epochs, ft_recipe=args.ft_recipe,
                  pretrain_options=dict(args.pretrain_options))
    plan = [(m, s, b) for b in sorted(budgets, reverse=True) for s in args.seeds for m in ('coma', 'mae')
            if m in args.methods]
    plan += [('random', s, 0) for s in args.seeds if 'random' in args.methods]
    log(f'{len(plan)} jobs: budgets {budgets} epochs x seeds {args.seeds} x {args.methods}; '
        f'{args.jobs} at a time; work dir {args.work_dir}')
    start, results = time.time(), []
    with ProcessPoolExecutor(max_workers=args.jobs, initializer=_init_worker) as pool:
        futures = [pool.submit(job, m, s, b, shared) for m, s, b in plan]
        for i, fut in enumerate(futures, 1):
            r = fut.result()
            results.append(r)
            elapsed = time.time() - start
            log(f'[{i}/{len(plan)}] {r["method"]} seed {r["seed"]} {r["epochs"]} ep: linear probe '
                f'{r["linprobe_top1"]:.1f}%, fine-tune {r["finetune_top1"]:.1f}%; elapsed {elapsed / 60:.1f} min, '
                f'ETA {elapsed / i * (len(plan) - i) / 60:.1f} min')
    md = report(results, args, time.time() - start)
    print(md)
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(results, f, indent=1)
    if args.results:
        with open(args.results, 'w') as f:
            f.write(md + '\n')
    return results


if __name__ == '__main__':
    main()
