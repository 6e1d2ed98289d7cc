"""Loading pre-trained weights into backbones: one filter function, strict about unexpected keys.

Used by ``init_cfg=dict(type='Pretrained', ...)`` of our backbones, by
:func:`convert_pretrain_checkpoint` (``tools/convert_checkpoint.py``) and by the classifiers. Missing keys are reported; unexpected keys
and shape mismatches fail with the full list, naming the file.
"""
import os
import re
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log

from ..engine.safe_load import safe_torch_load

#: Parameters whose size follows a config value and can be resized when it changes.
RESIZABLE_SUFFIXES = ('coarse_bias_table',)


def extract_state_dict(checkpoint: Dict) -> Dict[str, torch.Tensor]:
    """The weights of a checkpoint: its ``state_dict``, ``model`` or the dict itself."""
    if not isinstance(checkpoint, dict):
        raise TypeError(f'a checkpoint must be a dict, got {type(checkpoint).__name__}')
    for key in ('state_dict', 'model'):
        if key in checkpoint and isinstance(checkpoint[key], dict):
            return checkpoint[key]
    return checkpoint


def _resize_table(table: torch.Tensor, rows: int) -> torch.Tensor:
    """Bilinearly resizes a ``((2W-1)**2, heads)`` relative position table to ``rows`` rows."""
    src, dst = int(round(table.shape[0] ** 0.5)), int(round(rows ** 0.5))
    grid = table.T.reshape(1, table.shape[1], src, src)
    return F.interpolate(grid, size=(dst, dst), mode='bicubic', align_corners=False)[0].reshape(-1, dst * dst).T


def filter_state_dict(state_dict: Dict[str, torch.Tensor], model: nn.Module,
                      prefix: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """Keeps the keys under ``prefix`` (stripped), and resizes position tables to ``model``'s sizes.

    Args:
        state_dict: source weights.
        model: the module the weights are for.
        prefix: e.g. ``'encoder.'`` or ``'backbone.'``; None takes ``'backbone.'`` when every key that
            is not the model's own starts with it, else nothing.

    Returns:
        A new state dict in ``model``'s key space.
    """
    own = model.state_dict()
    if prefix is None and any(k.startswith('backbone.') for k in state_dict) and not any(k in own for k in state_dict):
        prefix = 'backbone.'
    if prefix:
        state_dict = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    out = {}
    for key, value in state_dict.items():
        if key.endswith(RESIZABLE_SUFFIXES) and key in own and own[key].shape != value.shape \
                and value.shape[1:] == own[key].shape[1:]:
            value = _resize_table(value.float(), own[key].shape[0]).to(value.dtype)
        out[key] = value
    return out


def load_backbone_checkpoint(model: nn.Module, filename: str, prefix: Optional[str] = None,
                             map_location: str = 'cpu') -> Tuple[List[str], List[str]]:
    """Loads a checkpoint into ``model``, reporting missing keys and failing on unexpected ones.

    Args:
        model: the backbone.
        filename: checkpoint path.
        prefix: see :func:`filter_state_dict`.
        map_location: as in :func:`torch.load`.

    Returns:
        ``(missing_keys, unexpected_keys)``; the latter is always empty (else this raises).

    Raises:
        ValueError: unexpected keys or shape mismatches, each listed, naming the file.
    """
    state_dict = filter_state_dict(extract_state_dict(safe_torch_load(filename, map_location)), model, prefix)
    own = model.state_dict()
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
                  for k, v in state_dict.items() if k in own and own[k].shape != v.shape]
    if unexpected or mismatched or not state_dict:
        raise ValueError(
            f'checkpoint {filename} does not fit {type(model).__name__}'
            f'{" (prefix " + repr(prefix) + ")" if prefix else ""}: '
            f'{len(unexpected)} unexpected keys {unexpected[:20]}{" ..." if len(unexpected) > 20 else ""}; '
            f'{len(mismatched)} shape mismatches {mismatched[:20]}'
            f'{"; no usable keys at all" if not state_dict else ""}')
    missing = sorted(set(own) - set(state_dict))
    model.load_state_dict(state_dict, strict=False)
    print_log(f'loaded {filename} into {type(model).__name__}: {len(state_dict)} tensors, '
              f'missing keys: {missing if missing else "none"}', logger='current')
    return missing, []


def init_from_pretrained(module: nn.Module) -> bool:
    """Handles ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=...)`` strictly.

    ``checkpoint=None`` means "no pre-trained weights" (configs leave it to the command line).

    Returns:
        True when ``init_cfg`` asked for pre-trained weights (loaded, or deliberately None).
    """
    cfg = getattr(module, 'init_cfg', None)
    if not (isinstance(cfg, dict) and cfg.get('type') == 'Pretrained'):
        return False
    if cfg.get('checkpoint') is None:
        print_log(f'{type(module).__name__}: init_cfg.checkpoint is None, keeping the random initialisation',
                  logger='current')
    else:
        load_backbone_checkpoint(module, cfg['checkpoint'], prefix=cfg.get('prefix'))
    module._is_init = True
    return True


def convert_pretrain_checkpoint(src: str, dst: str, backbone_cfg: Optional[Dict] = None) -> Dict:
    """Turns a CoMA/MAE pre-training checkpoint into a backbone-only checkpoint, verified.

    Only M_t's encoder (``backbone.*``) is exported; the decoder, the frozen M_{t-1}, the multi-scale
    fusion heads of earlier pre-training checkpoints and the optimizer state are dropped. The result is loaded strictly (no
    unexpected keys, no shape mismatch) into a freshly built backbone after it is written, so a
    checkpoint that would not load downstream fails here, with the keys listed.

    Args:
        src: the pre-training checkpoint (mmengine's ``epoch_N.pth``).
        dst: where to write the backbone checkpoint.
        backbone_cfg: the backbone's config; default: the one in the checkpoint's ``meta.cfg``.

    Returns:
        dict(dst, tensors, missing, backbone): the summary also printed.
    """
    from mmengine.config import Config
    from mmengine.registry import MODELS

    ckpt = safe_torch_load(src, map_location='cpu')
    state = extract_state_dict(ckpt)
    weights = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    if not weights:
        raise KeyError(f'{src} has no backbone.* weights; is it a CoMA/MAE pre-training checkpoint? '
                       f'first keys: {list(state)[:8]}')
    meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    cfg = Config.fromstring(meta['cfg'], '.py') if meta.get('cfg') else None
    if backbone_cfg is None:
        if cfg is None:
            raise KeyError(f'{src} carries no config; pass --arch or --config')
        backbone_cfg = cfg.model.backbone
    backbone_cfg = dict(backbone_cfg)
    backbone_cfg.pop('init_cfg', None)
    if backbone_cfg.get('type') == 'DyViT':
        backbone_cfg['out_indices'] = (0, 1, 2, 3)  # the downstream contract; missing output norms are reported
        # options of earlier pre-training runs that are not part of the backbone downstream (the fusion
        # heads fed the pre-training decoder; the locality prior was an initialisation)
        for key in ('masked_fusion', 'coarse_locality'):
            backbone_cfg.pop(key, None)
        weights = {k: v for k, v in weights.items() if not k.startswith('fusion_heads.')}
    os.makedirs(os.path.dirname(os.path.abspath(dst)) or '.', exist_ok=True)
    out = dict(state_dict=weights, meta=dict(source=os.path.abspath(src), backbone=backbone_cfg,
                                             epoch=meta.get('epoch'), iter=meta.get('iter')))
    torch.save(out, dst)
    model = MODELS.build(backbone_cfg)
    missing, _ = load_backbone_checkpoint(model, dst)
    print(f'wrote {dst}: {len(weights)} backbone tensors; missing in a {backbone_cfg["type"]} '
          f'(fresh init downstream): {missing if missing else "none"}; unexpected: none')
    return dict(dst=dst, tensors=len(weights), missing=missing, backbone=backbone_cfg)


def convert_classifier_checkpoint(src: str, dst: str) -> Dict:
    """Turns a fine-tuned ``ImageClassifier`` checkpoint (DyViT backbone, LayerNorm head) into a timm
    ``dyvit_*`` checkpoint, verified.

    ``backbone.*`` becomes the timm model's own keys, ``head.norm.*`` its ``head_norm.*`` and
    ``head.fc.*`` its ``head.*``. The result is written as a plain state dict (timm's format), loaded
    strictly into ``timm.create_model('dyvit_<arch>', num_classes=N)`` and its logits compared with the
    classifier's on a random batch. Load it with ``timm.create_model('dyvit_<arch>', num_classes=N,
    checkpoint_path=dst)``.

    Returns:
        dict(dst, model, num_classes, max_logit_diff).

    Raises:
        KeyError: ``src`` is not such a checkpoint (no ``head.fc`` or config), naming what is missing.
        ValueError: a linear-probe head (BatchNorm, no LayerNorm), which timm's DyViT head cannot hold.
    """
    import timm
    from mmengine.config import Config
    from mmengine.registry import MODELS

    ckpt = safe_torch_load(src, map_location='cpu')
    state = extract_state_dict(ckpt)
    if 'head.fc.weight' not in state:
        raise KeyError(f'{src} has no head.fc.weight: not a fine-tuned ImageClassifier checkpoint '
                       f'(first keys: {list(state)[:8]})')
    if 'head.norm.weight' not in state:
        raise ValueError(f'{src}: the head has no LayerNorm (a linear probe\'s BatchNorm head?); timm\'s dyvit_* '
                         'classifier reads pooled features through a LayerNorm')
    meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    if not meta.get('cfg'):
        raise KeyError(f'{src} carries no config (meta.cfg): the DyViT arch is unknown')
    cfg = Config.fromstring(meta['cfg'], '.py')
    arch, num_classes = cfg.model.backbone.get('arch', 'tiny'), int(state['head.fc.weight'].shape[0])
    renames = (('backbone.', ''), ('head.norm.', 'head_norm.'), ('head.fc.', 'head.'))
    weights = {}
    for key, value in state.items():
        for old, new in renames:
            if key.startswith(old):
                weights[new + key[len(old):]] = value
                break
    model = timm.create_model(f'dyvit_{arch}', num_classes=num_classes)
    own = model.state_dict()  # the output norms of stages the timm classifier does not norm are dropped
    weights = {k: v for k, v in weights.items() if k in own or not re.match(r'norm\d+\.', k)}
    model.load_state_dict(weights, strict=True)
    os.makedirs(os.path.dirname(os.path.abspath(dst)) or '.', exist_ok=True)
    torch.save(weights, dst)
    classifier = MODELS.build(dict(cfg.model, backbone=dict(cfg.model.backbone, init_cfg=None)))
    classifier.load_state_dict(state, strict=False)
    classifier.eval(), model.eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        diff = float((classifier(x, mode='tensor') - model(x)).abs().max())
    if diff > 1e-4:
        raise ValueError(f'{src}: the converted timm model\'s logits differ from the classifier\'s by {diff:.2e}')
    print(f'wrote {dst}: timm dyvit_{arch}, {num_classes} classes, {len(weights)} tensors; max logit difference '
          f'to the classifier {diff:.2e}')
    return dict(dst=dst, model=f'dyvit_{arch}', num_classes=num_classes, max_logit_diff=diff)
