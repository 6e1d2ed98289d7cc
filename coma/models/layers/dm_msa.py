"""Dynamic Multi-Window Self-Attention (DM-MSA), the attention of DyViT, written plainly.

Paper: Li et al., "CoMA: Complementary Masking and Hierarchical Dynamic Multi-Window
Self-Attention in a Unified Pre-training Framework" (Figure 4b). The paper's equations are not
available to us; this is our reading (docs/design.md):

* the heads of a layer are split into a **fine** group, which attends inside one 32-px mask unit
  (``s x s`` tokens), and a **coarse** group, in which every token attends to one pooled key/value
  per unit over a window of ``coarse_window x coarse_window`` units (:class:`CoarseWindows`: the whole
  224-px image at pre-training size; windows, shifted every other block, at detection size);
* each group has its own relative position bias table;
* the two group outputs are fused with input-dependent weights ``a_g(x)``, twice the softmax of a
  small gate on the pooled features of the token's own unit: ``out = proj(concat_g(a_g(x) * O_g))``.

This module is the definition, and the reference of the tests; DyViT runs the same weights through
:mod:`.dm_msa_fast`, which computes the same outputs with fewer, larger and aligned kernels.
"""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .rel_pos import coords_rel_index


class CoarseWindows:
    """The coarse windows over a ``(gh, gw)`` grid of units, the one place their rule lives.

    Windows are ``window x window`` units (Swin's partition, the grid padded at its end); in shifted
    blocks they are offset by half a window along every axis longer than one window. A grid that fits
    one window is one window and is never shifted (:attr:`shifts` is then ``(False,)``).
    """

    def __init__(self, grid: Tuple[int, int], window: int) -> None:
        self.grid, self.window = tuple(grid), window
        self.shifts = (False,) if max(self.grid) <= window else (False, True)

    def split(self, shifted: bool) -> Tuple[Tuple[int, int], Tuple[int, int]]:
        """Per axis, the window side and the shift (a grid that fits one window along an axis is not cut)."""
        return tuple((g, 0) if g <= self.window else (self.window, self.window // 2 if shifted else 0)
                     for g in self.grid)

    def place(self, coords: torch.Tensor, shifted: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        """For units at ``(row, col)`` ``coords`` ``(..., 2)``: their window (row-major over the windows)
        and their ``(row, col)`` inside it."""
        (wh, sh), (ww, sw) = self.split(shifted)
        y, x = coords[..., 0] + sh, coords[..., 1] + sw
        across = -(-(self.grid[1] + sw) // ww)  # windows per row
        return (y // wh) * across + x // ww, torch.stack([y % wh, x % ww], -1)

    def rel_index(self, coords: torch.Tensor, shifted: bool) -> torch.Tensor:
        """``(..., U, U)`` rows of a ``(2w-1)**2`` coarse table between the units at ``coords``
        ``(..., U, 2)``; ``(2w-1)**2`` (one row past the table) where two units share no window."""
        win, local = self.place(coords, shifted)
        same = win[..., :, None] == win[..., None, :]
        return torch.where(same, coords_rel_index(local, self.window), (2 * self.window - 1) ** 2)


def unit_coords(grid: Tuple[int, int], device=None) -> torch.Tensor:
    """``(gh*gw, 2)`` row-major ``(row, col)`` of every unit (or token) of a grid."""
    ys, xs = torch.meshgrid(torch.arange(grid[0], device=device), torch.arange(grid[1], device=device),
                            indexing='ij')
    return torch.stack([ys.flatten(), xs.flatten()], -1)


class DMMSA(nn.Module):
    """Dynamic Multi-Window Self-Attention over the tokens of mask units.

    Args:
        dim: channels C.
        num_heads: total heads; ``dim`` must divide by it.
        fine_heads: heads of the fine (in-unit) group; the rest form the coarse group.
        unit_side: tokens per unit side ``s`` at this stage (``T = s*s``).
        coarse_window: coarse window side in units.
        qkv_bias: bias on the projections.
        attn_drop: dropout on attention weights (training only).
        proj_drop: dropout after the output projection.
    """

    def __init__(self, dim: int, num_heads: int, fine_heads: int, unit_side: int, coarse_window: int,
                 qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'dim {dim} is not divisible by num_heads {num_heads}')
        if not 0 < fine_heads < num_heads:
            raise ValueError(f'fine_heads must be in [1, {num_heads - 1}], got {fine_heads}')
        self.num_heads, self.fine_heads, self.coarse_heads = num_heads, fine_heads, num_heads - fine_heads
        self.head_dim, self.unit_side, self.coarse_window = dim // num_heads, unit_side, coarse_window
        self.tokens, self.attn_drop = unit_side * unit_side, attn_drop
        # With one token per unit (the last stage) the fine window holds the token alone: its output is
        # its value, so there are no fine queries or bias, and the key half of kv_fine is never read.
        self.fine_attends = unit_side > 1
        self.q = nn.Linear(dim, dim if self.fine_attends else self.coarse_heads * self.head_dim, bias=qkv_bias)
        self.kv_fine = nn.Linear(dim, 2 * fine_heads * self.head_dim, bias=qkv_bias)
        # on each unit's mean token: pooling commutes with the linear map
        self.kv_coarse = nn.Linear(dim, 2 * self.coarse_heads * self.head_dim, bias=qkv_bias)
        self.gate = nn.Linear(dim, 2)  # zero init (DyViT.init_linears keeps it): even weights at the start
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.coarse_bias_table = nn.Parameter(torch.zeros((2 * coarse_window - 1) ** 2, self.coarse_heads))
        nn.init.trunc_normal_(self.coarse_bias_table, std=0.02)
        if self.fine_attends:
            self.fine_bias_table = nn.Parameter(torch.zeros((2 * unit_side - 1) ** 2, fine_heads))
            nn.init.trunc_normal_(self.fine_bias_table, std=0.02)
            self.register_buffer('fine_rel', coords_rel_index(unit_coords((unit_side, unit_side)), unit_side),
                                 persistent=False)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def forward(self, x: torch.Tensor, coords: torch.Tensor, windows: CoarseWindows, shifted: bool) -> torch.Tensor:
        """``(B, U, T, C)`` tokens of the units at ``coords`` ``(B, U, 2)`` (all of a grid, or any subset:
        the visible ones) -> the same shape; ``windows`` and ``shifted`` give the coarse windows."""
        b, u, t, c = x.shape
        hf, hc, d = self.fine_heads, self.coarse_heads, self.head_dim
        drop = self.attn_drop if self.training else 0.0
        pooled = x.mean(2)  # B, U, C
        q = self.q(x).view(b, u, t, -1, d)  # heads [fine | coarse], or coarse only at one token a unit
        k_f, v_f = self.kv_fine(x).view(b, u, t, 2, hf, d).unbind(3)  # B, U, T, hf, d
        if self.fine_attends:  # every token attends to the tokens of its unit
            bias = self.fine_bias_table[self.fine_rel].permute(2, 0, 1).to(q.dtype)  # hf, T, T
            o_f = F.scaled_dot_product_attention(q[:, :, :, :hf].transpose(2, 3), k_f.transpose(2, 3),
                                                 v_f.transpose(2, 3), attn_mask=bias, dropout_p=drop)
            o_f = o_f.transpose(2, 3)  # B, U, T, hf, d
        else:
            o_f = v_f
        # coarse: every token attends to the pooled units of its window
        k_c, v_c = self.kv_coarse(pooled).view(b, u, 2, hc, d).permute(2, 0, 3, 1, 4)  # B, hc, U, d each
        table = F.pad(self.coarse_bias_table, (0, 0, 0, 1), value=float('-inf'))  # + the row of 'no window'
        bias = table[windows.rel_index(coords, shifted)].permute(0, 3, 1, 2).to(q.dtype)  # B, hc, U, U
        q_c = q[:, :, :, -hc:].permute(0, 3, 1, 2, 4).reshape(b, hc, u * t, d)
        o_c = F.scaled_dot_product_attention(q_c, k_c, v_c, attn_mask=bias.repeat_interleave(t, dim=2),
                                             dropout_p=drop)
        o_c = o_c.view(b, hc, u, t, d).permute(0, 2, 3, 1, 4)  # B, U, T, hc, d
        weights = 2 * self.gate(pooled).softmax(-1)[:, :, None, :, None, None]  # B, U, 1, 2, 1, 1
        out = torch.cat([o_f * weights[:, :, :, 0], o_c * weights[:, :, :, 1]], dim=3)  # B, U, T, H, d
        return self.proj_drop(self.proj(out.reshape(b, u, t, c)))
