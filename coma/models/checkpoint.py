"""Loading pre-trained weights into backbones: one filter function, strict about unexpected keys.

Used by ``init_cfg=dict(type='Pretrained', ...)`` of our backbones, by
:func:`convert_pretrain_checkpoint` (``tools/convert_checkpoint.py``) and by the classifiers. Missing keys are reported; unexpected keys
and shape mismatches fail with the full list, naming the file.
"""
import os
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log

from ..engine.safe_load import safe_torch_load
from .layers.units import UNIT

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


def clamp_untrained_offsets(table: torch.Tensor, extent: Tuple[int, int]) -> torch.Tensor:
    """Gives each row of a relative-position table beyond the trained offsets its nearest trained row.

    Pre-training on a grid smaller than the coarse window only ever sees offsets up to
    ``grid - 1`` units; the other rows keep their random init. Downstream, with larger grids, those
    rows would add noise that pre-training never shaped. Clamping the offset (as relative positions
    clipped at a maximum distance) uses the trained value of the furthest trained offset instead.

    Args:
        table: ``((2W-1)**2, heads)`` rows in row-major ``(dy, dx)`` order, offsets ``-(W-1)..W-1``.
        extent: ``(ey, ex)``: the largest trained ``|dy|`` and ``|dx|``.

    Returns:
        A new table of the same shape (equal to ``table`` when every offset was trained).
    """
    side = int(round(table.shape[0] ** 0.5))
    if side * side != table.shape[0] or side % 2 == 0:
        raise ValueError(f'a relative-position table has (2W-1)**2 rows, got shape {tuple(table.shape)}')
    half = side // 2
    ey, ex = (max(0, min(int(e), half)) for e in extent)
    offsets = torch.arange(side) - half
    rows, cols = offsets.clamp(-ey, ey) + half, offsets.clamp(-ex, ex) + half
    return table.view(side, side, -1)[rows][:, cols].reshape(table.shape)  # indexing copies


def pretrain_grid(cfg) -> Optional[Tuple[int, int]]:
    """The unit grid ``(gh, gw)`` a pre-training config trains on: its ``RandomResizedCrop`` size / 32.

    Returns None when the training pipeline has no ``RandomResizedCrop``.
    """
    pipeline = cfg.get('train_dataloader', {}).get('dataset', {}).get('pipeline') or cfg.get('train_pipeline') or []
    for t in pipeline:
        if t.get('type') in ('RandomResizedCrop', 'mmpretrain.RandomResizedCrop'):
            size = t.get('size', t.get('scale'))
            if size is None:
                continue
            h, w = (size, size) if isinstance(size, int) else tuple(size)[:2]
            return h // UNIT, w // UNIT
    return None


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


def convert_pretrain_checkpoint(src: str, dst: str, backbone_cfg: Optional[Dict] = None,
                                pretrain_grid_size: Optional[Tuple[int, int]] = None,
                                clamp_offsets: bool = False) -> Dict:
    """Turns a CoMA/MAE pre-training checkpoint into a backbone-only checkpoint, verified.

    Only M_t's encoder (``backbone.*``) is exported; the decoder, the frozen M_{t-1}, DyViT's
    ``masked_fusion`` heads and the optimizer state are dropped. The result is loaded strictly (no
    unexpected keys, no shape mismatch) into a freshly built backbone after it is written, so a
    checkpoint that would not load downstream fails here, with the keys listed.

    Args:
        src: the pre-training checkpoint (mmengine's ``epoch_N.pth``).
        dst: where to write the backbone checkpoint.
        backbone_cfg: the backbone's config; default: the one in the checkpoint's ``meta.cfg``.
        pretrain_grid_size: the unit grid ``(gh, gw)`` of pre-training; default: from the
            ``RandomResizedCrop`` of the checkpoint's config (None when it has none).
        clamp_offsets: give the coarse relative-position rows that a grid smaller than the coarse
            window never trained the value of their nearest trained row
            (:func:`clamp_untrained_offsets`). Off by default, which keeps them at their random
            init: on the demo (3 seeds) clamping moved the dense probe by at most +0.3 points and
            CoMA's UperNet by -0.2 to -1.5 mIoU (docs/results.md), so it is an option, not the default.

    Returns:
        dict(dst, tensors, missing, backbone, clamped): the summary also printed; ``clamped`` is
        the ``(ey, ex)`` offsets kept, or None when no table was changed.
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
    clamped = None
    if clamp_offsets:
        if pretrain_grid_size is None:
            pretrain_grid_size = pretrain_grid(cfg) if cfg is not None else None
        if pretrain_grid_size is None:
            raise ValueError(f'{src}: clamping untrained offsets needs the pre-training grid, but the checkpoint '
                             'carries no config with a RandomResizedCrop; pass --pretrain-size')
        for key, table in weights.items():
            half = int(round(table.shape[0] ** 0.5)) // 2 if key.endswith('coarse_bias_table') else 0
            extent = tuple(min(g - 1, half) for g in pretrain_grid_size)
            if half and extent != (half, half):
                weights[key], clamped = clamp_untrained_offsets(table, extent), extent
    backbone_cfg = dict(backbone_cfg)
    backbone_cfg.pop('init_cfg', None)
    if backbone_cfg.get('type') == 'DyViT':
        backbone_cfg['out_indices'] = (0, 1, 2, 3)  # the downstream contract; missing output norms are reported
        # the multi-scale fusion heads feed the pre-training decoder only: not part of the backbone downstream
        backbone_cfg.pop('masked_fusion', None)
        weights = {k: v for k, v in weights.items() if not k.startswith('fusion_heads.')}
    os.makedirs(os.path.dirname(os.path.abspath(dst)) or '.', exist_ok=True)
    out = dict(state_dict=weights, meta=dict(source=os.path.abspath(src), backbone=backbone_cfg,
                                             epoch=meta.get('epoch'), iter=meta.get('iter'),
                                             clamped_coarse_offsets=clamped))
    torch.save(out, dst)
    model = MODELS.build(backbone_cfg)
    missing, _ = load_backbone_checkpoint(model, dst)
    print(f'wrote {dst}: {len(weights)} backbone tensors; missing in a {backbone_cfg["type"]} '
          f'(fresh init downstream): {missing if missing else "none"}; unexpected: none'
          + (f'; coarse relative-position offsets beyond {clamped} (never trained on the pre-training grid '
             f'{tuple(pretrain_grid_size)}) take their nearest trained row' if clamped else ''))
    return dict(dst=dst, tensors=len(weights), missing=missing, backbone=backbone_cfg, clamped=clamped)
