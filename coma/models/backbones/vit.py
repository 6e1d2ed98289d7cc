"""A plain ViT (e.g. ViT-B/16) with the same masked-encoder interface as DyViT.

The paper reports CoMA on ViT-B as well. A mask unit of ``unit`` pixels covers ``k x k`` patches
(``k = unit / patch_size``; 2 for SPEC's 32-px units, 1 for MAE's own per-patch masking);
:meth:`ViT.forward_masked` returns one feature per visible unit, the ``k*k`` patch tokens
concatenated, so the CoMA/MAE decoder treats both backbones alike.
"""
from typing import Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from timm.models.vision_transformer import Block

from ..checkpoint import init_from_pretrained
from ..layers.pos_embed import sincos_2d
from ..layers.units import image_to_units, pad_to_multiple, visible_indices

ARCH_SETTINGS: Dict[str, Dict] = {
    'small': dict(embed_dim=384, depth=12, num_heads=6),
    'base': dict(embed_dim=768, depth=12, num_heads=12),
    'large': dict(embed_dim=1024, depth=24, num_heads=16),
}


class ViT(BaseModule):
    """Plain ViT with fixed 2-D sin-cos positions (as MAE pre-trains it) and no class token.

    Args:
        arch: ``'small' | 'base' | 'large'`` or a dict with ``embed_dim``, ``depth``, ``num_heads``.
        patch_size: patch side in pixels.
        unit: mask-unit side in pixels (a multiple of ``patch_size``).
        drop_path_rate: stochastic depth, linear over blocks.
        init_cfg: mmengine init config.
    """

    def __init__(self, arch: Union[str, Dict] = 'base', patch_size: int = 16, unit: int = 32,
                 drop_path_rate: float = 0.0, init_cfg: Optional[Dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if isinstance(arch, str):
            if arch not in ARCH_SETTINGS:
                raise KeyError(f"ViT: unknown arch '{arch}'; allowed: {sorted(ARCH_SETTINGS)} or a dict")
            arch = ARCH_SETTINGS[arch]
        if unit % patch_size:
            raise ValueError(f'ViT: unit {unit} must be a multiple of patch_size {patch_size}')
        self.embed_dim, self.patch_size, self.unit = arch['embed_dim'], patch_size, unit
        self.k = unit // patch_size
        self.unit_dim = self.embed_dim * self.k * self.k
        self.patch_embed = nn.Conv2d(3, self.embed_dim, patch_size, patch_size)
        dpr = torch.linspace(0, drop_path_rate, arch['depth']).tolist()
        self.blocks = nn.ModuleList(Block(self.embed_dim, arch['num_heads'], qkv_bias=True, drop_path=p) for p in dpr)
        self.norm = nn.LayerNorm(self.embed_dim)
        self.num_features = self.embed_dim  # width of the output map (timm's name)

    def init_weights(self) -> None:
        """Loads ``init_cfg=dict(type='Pretrained', ...)`` strictly; else the default init."""
        if not init_from_pretrained(self):
            super().init_weights()

    @property
    def num_layers(self) -> int:
        """Layer ids for lr decay: patch embedding 0, blocks 1..D; ``D + 1`` after the backbone."""
        return len(self.blocks) + 1

    def get_layer_id(self, name: str) -> int:
        """Layer id of parameter ``name`` (relative to this module) for layer-wise lr decay."""
        parts = name.split('.')
        if parts[0] == 'patch_embed':
            return 0
        if parts[0] == 'blocks':
            return int(parts[1]) + 1
        return self.num_layers

    def _tokens(self, units: torch.Tensor, grid: Tuple[int, int], ids: torch.Tensor) -> torch.Tensor:
        """``(B, N, 3, u, u)`` unit crops at unit indices ``ids`` -> ``(B, N*k*k, C)`` tokens with positions."""
        b, n = units.shape[:2]
        k, c = self.k, self.embed_dim
        x = self.patch_embed(units.flatten(0, 1)).flatten(2).transpose(1, 2).reshape(b, n, k * k, c)
        pos = sincos_2d((grid[0] * k, grid[1] * k), c).to(x)  # (gh*k)*(gw*k), C
        pos = pos.view(grid[0], k, grid[1], k, c).permute(0, 2, 1, 3, 4).reshape(-1, k * k, c)  # unit-major
        return (x + pos[ids]).flatten(1, 2)

    def _blocks(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        """Dense forward: ``(B, 3, H, W)`` -> a 1-tuple of the ``(B, C, ceil(H/p), ceil(W/p))`` map."""
        b, _, h, w = x.shape
        x, _ = pad_to_multiple(x, self.unit)
        grid = (x.shape[2] // self.unit, x.shape[3] // self.unit)
        ids = torch.arange(grid[0] * grid[1], device=x.device).expand(b, -1)
        tokens = self._blocks(self._tokens(image_to_units(x, self.unit), grid, ids))
        k, c = self.k, self.embed_dim
        fmap = tokens.view(b, grid[0], grid[1], k, k, c).permute(0, 5, 1, 3, 2, 4)
        fmap = fmap.reshape(b, c, grid[0] * k, grid[1] * k)
        p = self.patch_size
        return (fmap[..., :-(-h // p), :-(-w // p)].contiguous(),)

    def forward_masked(self, x: torch.Tensor, mask: torch.Tensor, num_visible: Optional[int] = None) -> torch.Tensor:
        """Encodes the visible units only.

        Args:
            x: ``(B, 3, H, W)``, multiples of ``unit``.
            mask: ``(B, H/unit, W/unit)`` bool, True = hidden.
            num_visible: visible units per sample if known (no check, no host sync), as in
                :meth:`coma.models.backbones.dyvit.DyViT.forward_masked`.

        Returns:
            ``(B, N_visible, k*k*C)``: each visible unit's patch features, concatenated row-major.
        """
        b, _, h, w = x.shape
        grid = (h // self.unit, w // self.unit)
        if mask.shape != (b, *grid):
            raise ValueError(f'ViT.forward_masked: mask shape {tuple(mask.shape)} does not match images '
                             f'{tuple(x.shape)}; expected {(b, *grid)}')
        ids = visible_indices(mask, num_visible)
        units = image_to_units(x, self.unit)
        units = torch.gather(units, 1, ids[:, :, None, None, None].expand(-1, -1, *units.shape[2:]))
        tokens = self._blocks(self._tokens(units, grid, ids))
        return tokens.reshape(b, ids.shape[1], self.unit_dim)
