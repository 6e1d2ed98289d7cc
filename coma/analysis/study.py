"""The real-data pre-training efficiency study: CoMA against MAE on DyViT-N, run by
``tools/study_efficiency.py``.

Data: ``tools/make_demo_data.py --imagenet``, i.e. crops of 10 of scikit-image's bundled photos,
labelled by source photo (400 train / 100 val, 128 px; val crops come from a held-out strip of
each photo). Real photographs, no download.

Protocol, for each method (CoMA, MAE), seed and pre-training budget b in {E/8, E/4, E/2, E}:
1. pre-train DyViT-N for b epochs through the mmengine Runner with the demo configs
   (``imagenet_configs/{coma,mae}_dyvit-n_1xb32-coslr-4e_demo.py``), identical except for the
   algorithm: same data, batch, mask ratio, optimizer, a schedule of b epochs (warm-up b/8), the
   Runner seed and the mask seed = seed;
2. convert the checkpoint (:func:`coma.models.checkpoint.convert_pretrain_checkpoint`);
3. linear probe: frozen backbone, features of the centre crops (and their mirror images) of the
   train split, the linear-probe demo config's head (BatchNorm without affine + linear) trained on
   them with SGD, top-1 on val;
4. short fine-tune through the Runner for ``--ft-epochs`` epochs, top-1 on val: the fine-tune demo
   config (layer decay, drop path, label smoothing, AdamW + cosine) without RandAugment, mixup,
   cutmix and random erasing (``--ft-recipe light``, the default; ``full`` keeps them).
A random initialisation (b = 0) is evaluated the same way, per seed. Every part of a job
(pre-training, linear probe, fine-tune) stores its result as JSON, so a rerun skips what has
finished. Jobs run ``--jobs`` at a time, one thread each. The report: mean ± sd per method and budget,
then the paired differences per seed (CoMA at each budget against MAE at each budget, and every
pre-trained arm against random init; :func:`paired`).
"""
import json
import os
import os.path as osp
import re
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Optional

from coma.analysis.features import linear_probe


def study_configs(root: str) -> Dict[str, str]:
    """The demo configs the study runs, under the checkout ``root``."""
    cfg = lambda name: osp.join(root, 'imagenet_configs', name)  # noqa: E731
    return dict(coma=cfg('coma_dyvit-n_1xb32-coslr-4e_demo.py'), mae=cfg('mae_dyvit-n_1xb32-coslr-4e_demo.py'),
                finetune=cfg('finetune_dyvit-n_1xb32-coslr-10e_demo.py'),
                linprobe=cfg('linprobe_dyvit-n_1xb32-coslr-20e_demo.py'))


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


def pretrain(config: str, seed: int, epochs: int, data_root: str, work_dir: str,
             options: Optional[Dict] = None) -> str:
    """Pre-trains DyViT-N with the pre-training ``config`` for ``epochs``; returns the converted
    backbone checkpoint."""
    from mmengine.runner import Runner
    from coma.models.checkpoint import convert_pretrain_checkpoint
    out = osp.join(work_dir, 'backbone.pth')
    if osp.isfile(out):
        return out
    cfg = _runner_cfg(config, work_dir, data_root, epochs, seed,
                      dict(model=dict(mask_seed=seed), train_dataloader=dict(dataset=dict(data_prefix=dict(img_path='train')))))
    cfg.merge_from_dict(options or {})  # ablations, e.g. model.head.norm_pix=False
    Runner.from_cfg(cfg).train()
    convert_pretrain_checkpoint(osp.join(work_dir, f'epoch_{epochs}.pth'), out)
    return out


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


def finetune(config: str, backbone_ckpt: Optional[str], seed: int, epochs: int, data_root: str, work_dir: str,
             recipe: str = 'light', options: Optional[Dict] = None) -> float:
    """Top-1 (%) on val after ``epochs`` of a short fine-tune (see :data:`FT_RECIPES`) through the Runner;
    ``options`` are config overrides applied last (e.g. ``{'optim_wrapper.optimizer.lr': 6.25e-5}``)."""
    from mmengine.runner import Runner
    extra = dict(model=dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=backbone_ckpt))),
                 train_cfg=dict(val_interval=epochs + 1))
    cfg = _runner_cfg(config, work_dir, data_root, epochs, seed, extra)
    cfg.merge_from_dict(FT_RECIPES[recipe])
    cfg.merge_from_dict(options or {})
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
    configs = args['configs']
    pre = _cached(osp.join(work, 'pretrain.json'), lambda: timed(
        pretrain, configs[method], seed, epochs, args['data_root'], osp.join(work, 'pretrain'), args['pretrain_options'])
        if epochs else
        dict(value=None, seconds=0.0))
    lp = _cached(osp.join(work, 'linprobe.json'), lambda: timed(
        linear_probe, configs['linprobe'], pre['value'], seed, args['data_root']))
    ft_name = f"finetune_{args['ft_recipe']}_{args['ft_epochs']}e" + _options_tag(args['ft_options'])
    ft = _cached(osp.join(work, f'{ft_name}.json'), lambda: timed(
        finetune, configs['finetune'], pre['value'], seed, args['ft_epochs'], args['data_root'], osp.join(work, ft_name), args['ft_recipe'],
        args['ft_options'])
    ) if args['ft_epochs'] else dict(value=float('nan'), seconds=0.0)
    return dict(method=method, seed=seed, epochs=epochs, linprobe_top1=lp['value'], finetune_top1=ft['value'],
                pretrain_s=pre['seconds'], linprobe_s=lp['seconds'], finetune_s=ft['seconds'])


def _options_tag(options: Dict) -> str:
    """``''``, or the config overrides as a file-name suffix (runs with other options get their own cache)."""
    if not options:
        return ''
    return '_' + re.sub(r'[^\w.=+-]+', '-', '_'.join(f'{k}={v}' for k, v in sorted(options.items())))


def _init_worker() -> None:
    os.environ['OMP_NUM_THREADS'] = '1'
    import coma  # noqa: F401


def _mean_std(values: List[float]) -> str:
    if all(v != v for v in values):  # NaN: not measured (--ft-epochs 0)
        return '—'
    if len(values) == 1:
        return f'{values[0]:.1f}'
    return f'{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}'


#: How the report names each method.
LABELS = {'coma': 'CoMA', 'mae': 'MAE', 'random': 'random init'}


def paired(results: List[Dict]) -> List[Dict]:
    """Per-seed differences between the runs of two (method, budget) arms over the seeds both ran:
    CoMA at every budget against MAE at every budget, and each pre-trained arm against random init.
    Returns one dict per pair: ``a``, ``b`` (``(method, epochs)``), ``seeds``, and per measure
    (``linprobe_top1``, ``finetune_top1``) the list of differences ``a - b``."""
    by = {}
    for r in results:
        by.setdefault((r['method'], r['epochs']), {})[r['seed']] = r
    arms = sorted(by)
    pairs = [(a, b) for a in arms if a[0] == 'coma' for b in arms if b[0] == 'mae']
    pairs += [(a, b) for a in arms if a[0] != 'random' for b in arms if b[0] == 'random']
    out = []
    for a, b in pairs:
        seeds = sorted(set(by[a]) & set(by[b]))
        if seeds:
            out.append(dict(a=a, b=b, seeds=seeds, **{k: [by[a][s][k] - by[b][s][k] for s in seeds]
                                                       for k in ('linprobe_top1', 'finetune_top1')}))
    return out


def _paired_table(results: List[Dict]) -> str:
    name = lambda arm: LABELS[arm[0]] + (f' {arm[1]} ep' if arm[0] != 'random' else '')  # noqa: E731
    lines = ['| paired over seeds (a - b) | seeds | linear probe (points) | per seed | fine-tune (points) | per seed |',
             '| --- | --- | --- | --- | --- | --- |']
    per_seed = lambda v: ' / '.join(f'{x:+.0f}' for x in v) if any(x == x for x in v) else '—'  # noqa: E731
    rows = [f'| {name(p["a"])} - {name(p["b"])} | {len(p["seeds"])} | '
            + ' | '.join(f'{_mean_std(p[k])} | {per_seed(p[k])}' for k in ('linprobe_top1', 'finetune_top1')) + ' |'
            for p in paired(results)]
    return '\n'.join(lines + rows) if rows else ''


def report(results: List[Dict], args, wall_s: float) -> str:
    """The markdown table (mean ± std over seeds) and the plot; returns the markdown."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    budgets = sorted({r['epochs'] for r in results})
    methods = [m for m in ('coma', 'mae', 'random') if any(r['method'] == m for r in results)]
    options = ''.join(f', {k}={v}' for k, v in sorted(args.ft_options.items()))
    ft = f'fine-tune top-1 (%, {args.ft_recipe} recipe, {args.ft_epochs} ep{options})'
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
            label = LABELS[m]
            lines.append(f'| {label} | {b} | {_mean_std(lp)} | {_mean_std(ft)} | {t:.0f} |')
            sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731  (as in the table)
            curves.setdefault(m, []).append((b, statistics.mean(lp), sd(lp), statistics.mean(ft), sd(ft)))
    table = '\n'.join(lines)
    pairs = _paired_table(results)
    if pairs:
        table += '\n\n' + pairs
    if args.plot:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, (k, title) in zip(axes, ((1, 'linear probe'), (3, f'{args.ft_epochs}-epoch fine-tune ({args.ft_recipe})'))):
            for m, pts in curves.items():
                if m == 'random':
                    ax.axhline(pts[0][k], color='grey', ls='--', label='random init')
                    continue
                xs = [p[0] for p in pts]
                ax.errorbar(xs, [p[k] for p in pts], yerr=[p[k + 1] for p in pts], marker='o', capsize=3,
                            label=LABELS[m])
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


def run(args) -> List[Dict]:
    """Runs the study that ``args`` (``tools/study_efficiency.py``'s arguments, with ``root``: the
    checkout whose configs it uses) describe; returns one dict per job."""
    if args.smoke:
        args.epochs, args.seeds = 1, args.seeds[:1]
        args.ft_epochs = 1 if args.ft_epochs is None else args.ft_epochs
    args.ft_epochs = 4 if args.ft_epochs is None else args.ft_epochs
    budgets = args.budgets or sorted({max(1, args.epochs // d) for d in (8, 4, 2, 1)})
    data_root = args.data_root or osp.join(args.work_dir, 'data')
    if not args.data_root and not osp.isdir(osp.join(data_root, 'val')):
        from coma.datasets.demo import make_imagenet
        make_imagenet(data_root)
    shared = dict(configs=study_configs(args.root), work_dir=args.work_dir, data_root=data_root, ft_epochs=args.ft_epochs, ft_recipe=args.ft_recipe,
                  pretrain_options=dict(args.pretrain_options), ft_options=dict(args.ft_options))
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

