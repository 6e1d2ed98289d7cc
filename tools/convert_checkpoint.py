"""Turns a CoMA/MAE pre-training checkpoint into a backbone-only checkpoint, or a fine-tuned classifier
into a timm ``dyvit_*`` checkpoint.

    python tools/convert_checkpoint.py PRETRAIN_CKPT OUT.pth [--arch nano|tiny|small|base] [--config CFG]
    python tools/convert_checkpoint.py FINETUNED_CKPT OUT.pth --timm

Only M_t's encoder (``backbone.*``) is exported and verified by a strict load
(``coma.models.checkpoint.convert_pretrain_checkpoint``). Downstream configs load it with
``backbone.init_cfg=dict(type='Pretrained', checkpoint=OUT.pth)``; timm with
``timm.create_model('dyvit_tiny', pretrained=True, pretrained_cfg_overlay=dict(file=OUT.pth))`` (the
classifier head left at its initialisation). With ``--timm`` a fine-tuned ``ImageClassifier`` becomes a
plain timm state dict, checked to give the classifier's logits:
``timm.create_model('dyvit_tiny', num_classes=N, checkpoint_path=OUT.pth)``.
"""
import argparse

import coma  # noqa: F401  (registers the backbones)
from coma.models.checkpoint import convert_classifier_checkpoint, convert_pretrain_checkpoint

convert = convert_pretrain_checkpoint  # an older name of the same function, kept for scripts that import it


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('src')
    p.add_argument('dst')
    p.add_argument('--arch', help='DyViT arch, when the checkpoint has no config')
    p.add_argument('--config', help='the pre-training config, when the checkpoint has none')
    p.add_argument('--timm', action='store_true', help='a fine-tuned classifier -> a timm dyvit_* checkpoint')
    args = p.parse_args(argv)
    if args.timm:
        return convert_classifier_checkpoint(args.src, args.dst)
    backbone = None
    if args.arch:
        backbone = dict(type='DyViT', arch=args.arch)
    elif args.config:
        from mmengine.config import Config
        backbone = Config.fromfile(args.config).model.backbone
    return convert_pretrain_checkpoint(args.src, args.dst, backbone)


if __name__ == '__main__':
    main()
