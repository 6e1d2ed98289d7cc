"""Train with the mmengine Runner: pre-training, classification, detection or segmentation.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--auto-scale-lr]
        [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi] [--trust-checkpoint]

Distributed: ``torchrun --nproc-per-node N tools/train.py CONFIG --launcher pytorch`` (or
``tools/dist_train.sh CONFIG N``); on CPU-only machines the gloo backend is used.
"""
import argparse
import contextlib

import coma  # noqa: F401  (registers modules, installs the safe checkpoint loader)
from coma.engine import trusted_checkpoints
from coma.engine.launch import (DictAction, cpu_friendly_dataloaders, enable_amp, load_config, scale_lr,
                               setup_distributed)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Train a model with the mmengine Runner')
    p.add_argument('config')
    p.add_argument('--work-dir')
    p.add_argument('--resume', nargs='?', const='auto', default=None,
                   help='resume from CKPT, or from the latest checkpoint of the work dir')
    p.add_argument('--amp', action='store_true',
                   help='mixed precision (a config with AMP on keeps its own; see coma.engine.launch.enable_amp)')
    p.add_argument('--auto-scale-lr', action='store_true',
                   help='scale the lr to the real batch: processes x batch x gradient accumulation')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys: key=value')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--trust-checkpoint', action='store_true',
                   help='fully unpickle checkpoints (only for files you trust: unpickling can run code)')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmengine.runner import Runner
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    if args.amp:
        enable_amp(cfg)
    scale_lr(cfg, enable=args.auto_scale_lr)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    cpu_friendly_dataloaders(cfg, ['train_dataloader', 'val_dataloader', 'test_dataloader'])
    setup_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    with trusted_checkpoints() if args.trust_checkpoint else contextlib.nullcontext():
        runner.train()


if __name__ == '__main__':
    main()
