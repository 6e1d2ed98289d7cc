"""Turns a CoMA/MAE pre-training checkpoint into a backbone-only checkpoint.

    python tools/convert_checkpoint.py PRETRAIN_CKPT OUT.pth [--arch nano|tiny|small|base] [--config CFG]
        [--clamp-untrained-offsets [--pretrain-size H [W]]]

Only M_t's encoder (``backbone.*``) is exported and verified by a strict load
(``coma.models.checkpoint.convert_pretrain_checkpoint``). Downstream configs load it with
``backbone.init_cfg=dict(type='Pretrained', checkpoint=OUT.pth)``.

A pre-training grid smaller than the coarse window (the demo's 128-px crops: 4x4 units, window 7)
never trains the coarse relative-position rows of offsets beyond the grid; they keep their init, or,
with ``--clamp-untrained-offsets``, take the value of their nearest trained row (the offset clamped;
measured on the demo: no better, docs/results.md). The grid comes from the config's
``RandomResizedCrop`` or ``--pretrain-size``.
"""
import argparse

import coma  # noqa: F401  (registers the backbones)
from coma.models.layers.units import UNIT
from coma.models.checkpoint import convert_pretrain_checkpoint

convert = convert_pretrain_checkpoint  # an older name of the same function, kept for scripts that import it


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('src')
    p.add_argument('dst')
    p.add_argument('--arch', help='DyViT arch, when the checkpoint has no config')
    p.add_argument('--config', help='the pre-training config, when the checkpoint has none')
    p.add_argument('--pretrain-size', type=int, nargs='+', metavar='PX',
                   help="pre-training crop size H [W] in pixels; default: the config's RandomResizedCrop")
    p.add_argument('--clamp-untrained-offsets', action='store_true',
                   help='give the coarse relative-position rows pre-training never trained their nearest trained row')
    args = p.parse_args(argv)
    grid = None
    if args.pretrain_size:
        if len(args.pretrain_size) > 2:
            p.error(f'--pretrain-size takes H or H W, got {args.pretrain_size}')
        h, w = args.pretrain_size * (2 if len(args.pretrain_size) == 1 else 1)
        grid = (h // UNIT, w // UNIT)
    backbone = None
    if args.arch:
        backbone = dict(type='DyViT', arch=args.arch)
    elif args.config:
        from mmengine.config import Config
        backbone = Config.fromfile(args.config).model.backbone
    return convert_pretrain_checkpoint(args.src, args.dst, backbone, pretrain_grid_size=grid,
                                       clamp_offsets=args.clamp_untrained_offsets)


if __name__ == '__main__':
    main()
