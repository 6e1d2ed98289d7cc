"""Evaluate a checkpoint with the mmengine Runner's test loop.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--show-dir DIR] [--tta]
        [--cfg-options k=v ...] [--launcher none|pytorch] [--trust-checkpoint]
"""
import argparse
import contextlib
import os

import coma  # noqa: F401
from coma.engine import trusted_checkpoints
from coma.engine.launch import DictAction, cpu_friendly_dataloaders, load_config, setup_distributed


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Test a checkpoint with the mmengine Runner')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--work-dir')
    p.add_argument('--show-dir', help='save prediction pictures here (detection and segmentation)')
    p.add_argument('--tta', action='store_true', help='test-time augmentation (the config\'s tta_model)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--trust-checkpoint', action='store_true',
                   help='fully unpickle the checkpoint (only for files you trust)')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmengine.runner import Runner
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    if not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint} does not exist')
    cfg.load_from = args.checkpoint
    if args.show_dir:
        vis = cfg.get('default_hooks', {}).get('visualization')
        if vis is None:
            raise KeyError(f'--show-dir needs default_hooks.visualization in {args.config}')
        vis['draw'] = True
        vis['interval'] = 1
        if 'Det' in vis.get('type', ''):
            vis['test_out_dir'] = os.path.abspath(args.show_dir)
        else:
            cfg.visualizer['save_dir'] = os.path.abspath(args.show_dir)
    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise KeyError(f'--tta needs tta_model and tta_pipeline in {args.config}')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    cpu_friendly_dataloaders(cfg, ['test_dataloader'])
    setup_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    with trusted_checkpoints() if args.trust_checkpoint else contextlib.nullcontext():
        runner.test()


if __name__ == '__main__':
    main()
