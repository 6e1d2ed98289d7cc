"""The MAE-style decoder shared by CoMA and the MAE baseline (SPEC section 2).

One token per mask unit: visible units carry the projected encoder features, hidden units a learned
mask token; fixed 2-D sin-cos positions; transformer blocks (default 8 x 512); then heads that
predict a unit's pixels (``unit*unit*3``) and, for CoMA, the frozen model's latent of that unit.
"""
from typing import Dict, Optional, Set, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from timm.models.vision_transformer import Block

from ..layers.pos_embed import sincos_2d
from ..layers.units import visible_indices


def _xavier(linear: nn.Linear) -> nn.Linear:
    nn.init.xavier_uniform_(linear.weight)
    nn.init.zeros_(linear.bias)
    return linear


class CoMADecoder(BaseModule):
    """Decoder over the full unit grid.

    Args:
        in_dim: encoder feature size per unit.
        unit: unit side in pixels (the pixel head predicts ``unit*unit*in_chans`` values).
        embed_dim: decoder width.
        depth: decoder blocks.
        num_heads: decoder heads.
        mlp_ratio: MLP width ratio.
        latent_dim: size of the latent-prediction head's output; None for no such head.
        in_chans: image channels.
        init_cfg: mmengine init config.
    """

    def __init__(self, in_dim: int, unit: int = 32, embed_dim: int = 512, depth: int = 8, num_heads: int = 16,
                 mlp_ratio: float = 4.0, latent_dim: Optional[int] = None, in_chans: int = 3,
                 init_cfg: Optional[Dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.embed_dim = embed_dim
        self._pos_cache: Dict[tuple, torch.Tensor] = {}
        self.embed = nn.Linear(in_dim, embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim)
        self.pixel_head = nn.Linear(embed_dim, unit * unit * in_chans)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                _xavier(m)
        # The latent head draws from a fork of the global generator: built from one seed, CoMA's decoder
        # and MAE's (no latent head) share every other weight and leave the generator in the same state,
        # so CoMA with lambda_lat = 0 is MAE draw for draw and the two pair exactly in ablations.
        self.latent_head = None
        if latent_dim:
            with torch.random.fork_rng(devices=[]):
                self.latent_head = _xavier(nn.Linear(embed_dim, latent_dim))

    def no_weight_decay(self) -> Set[str]:
        """Parameters without weight decay (timm's convention): the mask token, norms and biases."""
        return {'mask_token'} | {name for name, p in self.named_parameters() if p.ndim <= 1}

    def forward(self, latents: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Decodes the full grid.

        Args:
            latents: ``(B, N_visible, in_dim)`` encoder features of the visible units, row-major.
            mask: ``(B, gh, gw)`` bool, True = hidden.

        Returns:
            ``(B, gh*gw, embed_dim)`` decoded unit tokens (apply ``pixel_head``/``latent_head`` to
            the rows you need).
        """
        b, gh, gw = mask.shape
        ids = visible_indices(mask, latents.shape[1])  # the count is the latents': static, no sync
        x = self.mask_token.to(latents.dtype).expand(b, gh * gw, -1)
        x = x.scatter(1, ids[..., None].expand(-1, -1, self.embed_dim), self.embed(latents).to(x.dtype))
        x = x + self._pos_embed((gh, gw), x)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def _pos_embed(self, grid: Tuple[int, int], like: torch.Tensor) -> torch.Tensor:
        """Fixed sin-cos positions of ``grid``, cached per grid, device and dtype outside compilation."""
        key = (tuple(grid), like.device, like.dtype)
        if torch.compiler.is_compiling():
            return sincos_2d(grid, self.embed_dim).to(like)
        if key not in self._pos_cache:
            self._pos_cache[key] = sincos_2d(grid, self.embed_dim).to(like)
        return self._pos_cache[key]
