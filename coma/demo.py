"""The demo pipeline behind ``tools/demo.py`` (``make demo``): stages, their dependencies and
markers, and the scheduler that runs independent stages side by side. The stages are described in
the tool's docstring; the model card, metrics readers and the report table are in
:mod:`coma.analysis.report`.
"""
import json
import os
import os.path as osp
import subprocess
import sys
import threading
import time

from coma.analysis.report import latest_metrics, model_card, print_results, summarise

#: Stages run once; the others run once per seed (``--seeds``).
GLOBAL_STAGES = ('card', 'data', 'masks')
SEED_STAGES = ('pretrain', 'pretrain-mae', 'det', 'det-mae', 'det-scratch', 'seg', 'seg-mae', 'seg-scratch')
STAGES = GLOBAL_STAGES + SEED_STAGES + ('report',)
#: What each stage needs first (when both are selected; a per-seed stage waits for its own seed's).
DEPENDS = {'pretrain': ('data',), 'pretrain-mae': ('data',), 'det': ('pretrain',), 'seg': ('pretrain',),
           'det-mae': ('pretrain-mae',), 'seg-mae': ('pretrain-mae',), 'det-scratch': ('data',),
           'seg-scratch': ('data',)}
#: Start order among ready stages: the longest chains first.
PRIORITY = ('data', 'pretrain', 'pretrain-mae', 'det-scratch', 'det', 'det-mae', 'seg-scratch', 'seg', 'seg-mae',
            'card', 'masks', 'report')
#: (task, init) of each downstream stage.
DOWNSTREAM = {'det': ('det', 'coma'), 'det-mae': ('det', 'mae'), 'det-scratch': ('det', 'scratch'),
              'seg': ('seg', 'coma'), 'seg-mae': ('seg', 'mae'), 'seg-scratch': ('seg', 'scratch')}
RECIPES = {
    'demo': dict(pretrain='imagenet_configs/coma_dyvit-n_1xb32-coslr-4e_demo.py',
                 pretrain_mae='imagenet_configs/mae_dyvit-n_1xb32-coslr-4e_demo.py', pretrain_data='pool',
                 det='mmdet_configs/dyvit/mask-rcnn_dyvit-n_fpn_demo.py',
                 seg='mmseg_configs/dyvit/upernet_dyvit-n_demo.py', img_size=128),
    'full': dict(pretrain='imagenet_configs/coma_dyvit-b_8xb256-amp-coslr-800e_in1k.py',
                 pretrain_mae='imagenet_configs/mae_dyvit-b_8xb256-amp-coslr-800e_in1k.py', pretrain_data='imagenet',
                 det='mmdet_configs/dyvit/mask-rcnn_dyvit-b_fpn_1x_coco.py',
                 seg='mmseg_configs/dyvit/upernet_dyvit-b_8xb2-160k_ade20k-512x512.py', img_size=224),
}
#: The demo with 8x the pre-training (1,984 steps; 27-31 minutes a seed for CoMA, 18-20 for MAE, measured on one thread beside another stage): opt-in,
#: beyond ``make demo``'s 25 minutes; the downstream stages are the demo's.
RECIPES['demo-long'] = dict(RECIPES['demo'], pretrain='imagenet_configs/coma_dyvit-n_1xb32-coslr-32e_demo.py',
                            pretrain_mae='imagenet_configs/mae_dyvit-n_1xb32-coslr-32e_demo.py')


def log(msg: str) -> None:
    print(f'[demo {time.strftime("%H:%M:%S")}] {msg}', flush=True)


def _recipe(args) -> dict:
    return RECIPES[getattr(args, 'recipe', 'demo')]


def _train_cmd(args, cfg: str, *rest: str) -> list:
    """``tools/train.py`` (or test.py) in one process, or under torchrun with ``--gpus N``."""
    gpus = getattr(args, 'gpus', 0) or 0
    if gpus > 1:
        return [sys.executable, '-m', 'torch.distributed.run', '--nproc-per-node', str(gpus), *rest[:1], cfg,
                *rest[1:], '--launcher', 'pytorch']
    return [sys.executable, *rest[:1], cfg, *rest[1:]]


def run(args, cmd, **kw):
    """Runs ``cmd`` in the checkout ``args.root`` (a failure stops the stage)."""
    log('$ ' + ' '.join(cmd))
    subprocess.run(cmd, check=True, cwd=args.root, **kw)


def _card(args, work):
    card = model_card(work, args.device)
    log(f"feature maps {card['shapes']} -> {card['picture']}")


def _data(args, work):
    if getattr(args, 'recipe', 'demo') == 'full':
        need = [osp.join(args.data_root, p) for p in ('imagenet/train', 'imagenet/val', 'coco/annotations',
                                                      'coco/train2017', 'coco/val2017', 'ade/ADEChallengeData2016')]
        missing = [p for p in need if not osp.isdir(p)]
        if missing:
            raise FileNotFoundError(f'--recipe full: missing dataset folders {missing} under --data-root '
                                    f'{args.data_root} (see the README for the layouts)')
        return
    run(args, [sys.executable, 'tools/make_demo_data.py', '--imagenet', osp.join(args.data_root, 'imagenet'),
         '--coco', osp.join(args.data_root, 'coco'), '--ade', osp.join(args.data_root, 'ade'),
         '--pool', osp.join(args.data_root, 'pool')])


def _masks(args, work):
    run(args, [sys.executable, 'tools/visualize_masks.py', '--out', osp.join(work, 'mask_frequency.png')])


def seed_dir(work: str, seed: int) -> str:
    return osp.join(work, f'seed{seed}')


def backbone_path(work: str, seed: int, algo: str) -> str:
    """The converted backbone of seed ``seed``'s ``algo`` ('coma' or 'mae') pre-training."""
    return osp.join(seed_dir(work, seed), f'dyvit_{algo}_backbone.pth')


def _pretrain(args, work, seed: int, algo: str = 'coma'):
    recipe = _recipe(args)
    wd = osp.join(seed_dir(work, seed), 'pretrain' if algo == 'coma' else f'pretrain-{algo}')
    resume = ['--resume'] if osp.exists(osp.join(wd, 'last_checkpoint')) else []
    quick = ['train_cfg.max_epochs=1', 'default_hooks.checkpoint.interval=1'] if getattr(args, 'quick', False) else []
    data = recipe['pretrain_data']
    opts = [f'train_dataloader.dataset.data_root={args.data_root}', f'train_dataloader.dataset.data_prefix.img_path={data}']
    if data == 'imagenet':  # the full recipe: DATA_ROOT/imagenet/train
        opts = [f"train_dataloader.dataset.data_root={osp.join(args.data_root, 'imagenet')}"]
    cfg = recipe['pretrain'] if algo == 'coma' else recipe['pretrain_mae']
    run(args, _train_cmd(args, cfg, 'tools/train.py', '--work-dir', wd, '--cfg-options', *opts, f'randomness.seed={seed}',
                   f'model.mask_seed={seed}', *quick, *resume))
    ckpt = open(osp.join(wd, 'last_checkpoint')).read().strip()
    if algo == 'coma':
        val = osp.join(args.data_root, 'imagenet', 'val')
        cls = sorted(os.listdir(val))[0]
        image = osp.join(val, cls, sorted(os.listdir(osp.join(val, cls)))[0])
        run(args, [sys.executable, 'tools/visualize_reconstruction.py', ckpt, image, '--size', str(recipe['img_size']),
             '--out', osp.join(seed_dir(work, seed), 'reconstruction.png')])
    run(args, [sys.executable, 'tools/convert_checkpoint.py', ckpt, backbone_path(work, seed, algo)])


def downstream(args, work, task: str, init: str, seed: int) -> dict:
    """Trains and tests the detector or segmenter of the recipe from ``init`` ('coma', 'mae' or
    'scratch') with ``seed`` (resuming an interrupted run)."""
    recipe = getattr(args, 'recipe', 'demo')
    cfg = RECIPES[recipe][task]
    name = f'{task}-{init}'
    wd = osp.join(seed_dir(work, seed), name)
    root = osp.join(args.data_root, 'coco' if task == 'det' else 'ade')
    if task == 'seg' and recipe == 'full':
        root = osp.join(root, 'ADEChallengeData2016')
    opts = [f'{k}.dataset.data_root={root}' for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    opts.append(f'randomness.seed={seed}')
    if recipe != 'full':  # tools/test.py scores the final checkpoint below: no validation inside training
        opts.append('train_cfg.val_begin=1000000000')
    if task == 'det':
        ann = osp.join(root, 'annotations', 'instances_val2017.json')
        opts += [f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}']
    if init != 'scratch':
        opts.append(f'model.backbone.init_cfg.checkpoint={backbone_path(work, seed, init)}')
    if getattr(args, 'quick', False):
        opts += (['train_cfg.max_epochs=1', 'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1']
                 if task == 'det' else ['train_cfg.max_iters=20', 'train_cfg.val_interval=20',
                                        'default_hooks.checkpoint.interval=20'])
    resume = ['--resume'] if osp.exists(osp.join(wd, 'last_checkpoint')) else []
    run(args, _train_cmd(args, cfg, 'tools/train.py', '--work-dir', wd, '--cfg-options', *opts, *resume))
    ckpt = open(osp.join(wd, 'last_checkpoint')).read().strip()
    show = ['--show-dir', osp.join(seed_dir(work, seed), f'{name}_predictions')] if seed == args.seeds[0] else []
    run(args, _train_cmd(args, cfg, 'tools/test.py', ckpt, '--work-dir', osp.join(wd, 'test'), *show, '--cfg-options', *opts))
    metrics = latest_metrics(osp.join(wd, 'test'))
    with open(osp.join(seed_dir(work, seed), f'{name}_metrics.json'), 'w') as f:
        json.dump(metrics, f, indent=1)
    log(f'{name} (seed {seed}): {metrics}')
    return metrics


def marker(work: str, stage: str, seed: 'int | None') -> str:
    """The ``.<stage>.done`` file of a finished stage (per seed for the per-seed stages)."""
    return osp.join(work if seed is None else seed_dir(work, seed), f'.{stage}.done')


def stage_seconds(work: str, seeds) -> dict:
    """Wall time of each finished stage (``stage`` or ``stage@seed``), from its marker."""
    out = {}
    for stage, seed in [(s, None) for s in GLOBAL_STAGES] + [(s, k) for k in seeds for s in SEED_STAGES]:
        path = marker(work, stage, seed)
        if osp.exists(path):
            try:
                out[stage if seed is None else f'{stage}@{seed}'] = json.load(open(path))['seconds']
            except (ValueError, KeyError, TypeError):
                pass  # a marker from an older version: finished, time unknown
    return out


def _report(args, work):
    rows = summarise(work, args.seeds)
    print_results(rows, 'DyViT-N, demo data' if getattr(args, 'recipe', 'demo') != 'full' else 'DyViT-B, COCO / ADE20K')
    times = stage_seconds(work, args.seeds)
    print('\n| stage | wall time (s) |\n| --- | --- |')
    for stage, sec in times.items():
        print(f'| {stage} | {sec:.0f} |')
    wall_path = osp.join(work, 'wall.json')
    wall = json.load(open(wall_path)) if osp.exists(wall_path) else None
    if wall:
        print(f"\nthis invocation, start to end: {wall['seconds'] / 60:.1f} min ({wall['jobs']} stages at a time)")
    report = dict(rows=[{k: r[k] for k in ('task', 'init', 'metric', 'mean', 'std', 'seeds', 'values')} for r in rows],
                  stage_seconds=times, wall_seconds=wall['seconds'] if wall else None)
    with open(osp.join(work, 'report.json'), 'w') as f:
        json.dump(report, f, indent=1)
    print(f"wrote {osp.join(work, 'report.json')}")


STAGE_FUNCS = dict(card=lambda a, w, s: _card(a, w), data=lambda a, w, s: _data(a, w),
                   masks=lambda a, w, s: _masks(a, w), pretrain=lambda a, w, s: _pretrain(a, w, s, 'coma'),
                   **{'pretrain-mae': lambda a, w, s: _pretrain(a, w, s, 'mae')},
                   **{name: (lambda a, w, s, t=t, i=i: downstream(a, w, t, i, s)) for name, (t, i) in DOWNSTREAM.items()},
                   report=lambda a, w, s: _report(a, w))


def run_stage(args, work: str, stage: str, seed: 'int | None' = None) -> None:
    """Runs one stage (of one seed) in this process and marks it done with its wall time."""
    start = time.time()
    label = stage if seed is None else f'{stage}@{seed}'
    log(f'stage {label}')
    if seed is not None:
        os.makedirs(seed_dir(work, seed), exist_ok=True)
    STAGE_FUNCS[stage](args, work, seed)
    seconds = time.time() - start
    if stage != 'report':
        with open(marker(work, stage, seed), 'w') as f:
            json.dump(dict(finished=time.strftime('%Y-%m-%d %H:%M:%S'), seconds=round(seconds, 1)), f)
    log(f'stage {label} finished in {seconds:.0f} s')


def _child_argv(args, stage: str, seed: 'int | None') -> list:
    argv = [sys.executable, osp.join(args.root, 'tools', 'demo.py'), '--stages', stage, '--jobs', '1', '--work-dir', args.work_dir,
            '--data-root', args.data_root, '--device', args.device, '--recipe', args.recipe, '--gpus', str(args.gpus),
            '--seeds', *map(str, args.seeds if seed is None else [seed])]
    return argv + (['--quick'] if args.quick else []) + (['--force'] if args.force else [])


def _pump(proc: subprocess.Popen, label: str) -> None:
    for line in proc.stdout:
        print(f'[{label}] {line}', end='', flush=True)


def _blocked(task, todo, running) -> bool:
    stage, seed = task
    needs = DEPENDS.get(stage, ())
    pending = list(todo) + list(running)
    return any(s in needs and (k is None or k == seed) for s, k in pending)


def run_parallel(args, work: str, todo: list) -> None:
    """Runs ``todo`` ((stage, seed) pairs) as child processes, ``args.jobs`` at a time, respecting
    :data:`DEPENDS`."""
    env = dict(os.environ)
    if args.device == 'cpu':  # share the cores instead of oversubscribing them
        env['OMP_NUM_THREADS'] = str(max(1, (os.cpu_count() or 1) // args.jobs))
    running, failed = {}, []
    order = lambda t: (PRIORITY.index(t[0]), -1 if t[1] is None else t[1])  # noqa: E731
    while todo or running:
        for task in sorted(todo, key=order):
            if len(running) >= args.jobs or failed:
                break
            if _blocked(task, [t for t in todo if t != task], running):
                continue
            stage, seed = task
            label = stage if seed is None else f'{stage}@{seed}'
            proc = subprocess.Popen(_child_argv(args, stage, seed), cwd=args.root, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, bufsize=1)
            thread = threading.Thread(target=_pump, args=(proc, label), daemon=True)
            thread.start()
            running[task] = (proc, thread)
            todo.remove(task)
        time.sleep(0.5)
        for task, (proc, thread) in list(running.items()):
            if proc.poll() is not None:
                thread.join()
                del running[task]
                if proc.returncode != 0:
                    failed.append((task, proc.returncode))
        if failed and not running:
            break
    if failed:
        raise SystemExit(f'demo: stage(s) {failed} failed (their output is above, prefixed with their name); '
                         f'rerun the same command to resume: finished stages are skipped')


def run_demo(args) -> None:
    """Runs the stages of ``args`` (``tools/demo.py``'s arguments, with ``root``: the checkout whose
    tools and configs the stages run), skipping finished ones, then the report."""
    work = osp.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    start = time.time()
    todo = []
    for stage in args.stages:
        if stage == 'report':
            continue
        for seed in ([None] if stage in GLOBAL_STAGES else args.seeds):
            path = marker(work, stage, seed)
            if osp.exists(path) and not args.force:
                log(f'stage {stage if seed is None else f"{stage}@{seed}"}: finished before ({path}); --force reruns it')
            else:
                todo.append((stage, seed))
    count = len(todo)
    if (args.gpus or 0) > 1 and args.jobs > 1:
        # each stage is a torchrun job on all the GPUs (and the same port): one at a time
        log(f'--gpus {args.gpus}: the stages run one after another (--jobs {args.jobs} ignored)')
        args.jobs = 1
    if args.jobs > 1 and count > 1:
        run_parallel(args, work, list(todo))
    else:
        for stage, seed in todo:
            run_stage(args, work, stage, seed)
    if count > 1:
        with open(osp.join(work, 'wall.json'), 'w') as f:
            json.dump(dict(seconds=round(time.time() - start, 1), jobs=args.jobs), f)
    if 'report' in args.stages:
        run_stage(args, work, 'report')

