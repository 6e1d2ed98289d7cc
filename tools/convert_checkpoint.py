"""Turns a CoMA/MAE pre-training checkpoint into a backbone-only checkpoint.

    python tools/convert_checkpoint.py PRETRAIN_CKPT OUT.pth [--arch nano|tiny|small|base] [--config CFG]

Only M_t's encoder (``backbone.*``) is exported; the decoder, the frozen M_{t-1} and the optimizer
state are dropped. The result is loaded strictly (no unexpected keys, no shape mismatch) into a
freshly built backbone before it is written, so a checkpoint that would not load downstream fails
here, with the keys listed. Downstream configs load it with
``backbone.init_cfg=dict(type='Pretrained', checkpoint=OUT.pth)``.
"""
import argparse
import os
import sys
from typing import Dict, Optional

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

import torch  # noqa: E402


def convert(src: str, dst: str, backbone_cfg: Optional[Dict] = None) -> Dict:
    """Extracts and verifies the backbone weights; returns a summary."""
    import coma  # noqa: F401
    from mmengine.registry import MODELS

    from coma.engine import safe_torch_load
    from coma.models.checkpoint import extract_state_dict, load_backbone_checkpoint

    ckpt = safe_torch_load(src, map_location='cpu')
    state = extract_state_dict(ckpt)
    weights = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    if not weights:
        raise KeyError(f'{src} has no backbone.* weights; is it a CoMA/MAE pre-training checkpoint? '
                       f'first keys: {list(state)[:8]}')
    meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    if backbone_cfg is None:
        from mmengine.config import Config
        cfg_text = meta.get('cfg')
        if not cfg_text:
            raise KeyError(f'{src} carries no config; pass --arch or --config')
        backbone_cfg = Config.fromstring(cfg_text, '.py').model.backbone
    backbone_cfg = dict(backbone_cfg)
    backbone_cfg.pop('init_cfg', None)
    if backbone_cfg.get('type') == 'DyViT':
        backbone_cfg['out_indices'] = (0, 1, 2, 3)  # the downstream contract; missing output norms are reported
    os.makedirs(os.path.dirname(os.path.abspath(dst)) or '.', exist_ok=True)
    out = dict(state_dict=weights, meta=dict(source=os.path.abspath(src), backbone=backbone_cfg,
                                             epoch=meta.get('epoch'), iter=meta.get('iter')))
    torch.save(out, dst)
    model = MODELS.build(backbone_cfg)
    missing, _ = load_backbone_checkpoint(model, dst)
    summary = dict(dst=dst, tensors=len(weights), missing=missing, backbone=backbone_cfg)
    print(f'wrote {dst}: {len(weights)} backbone tensors; missing in a {backbone_cfg["type"]} '
          f'(fresh init downstream): {missing if missing else "none"}; unexpected: none')
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('src')
    p.add_argument('dst')
    p.add_argument('--arch', help='DyViT arch, when the checkpoint has no config')
    p.add_argument('--config', help='the pre-training config, when the checkpoint has none')
    args = p.parse_args(argv)
    backbone = None
    if args.arch:
        backbone = dict(type='DyViT', arch=args.arch)
    elif args.config:
        from mmengine.config import Config
        backbone = Config.fromfile(args.config).model.backbone
    return convert(args.src, args.dst, backbone)


if __name__ == '__main__':
    main()
