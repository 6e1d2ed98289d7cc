"""Dynamic Multi-Window Self-Attention (DM-MSA), the attention of DyViT.

Paper: Li et al., "CoMA: Complementary Masking and Hierarchical Dynamic Multi-Window
Self-Attention in a Unified Pre-training Framework" (Figure 4b). The paper's equations are not
available to us; this is our reading (docs/design.md):

* the heads of a layer are split into a **fine** group, which attends inside one 32-px mask unit
  (``s x s`` tokens), and a **coarse** group, in which every token attends to one pooled key/value
  per unit over a window of ``coarse_window x coarse_window`` units (the whole 224-px image at
  pre-training size; windows, shifted every other block, at detection size);
* each group has its own relative position bias table;
* the two group outputs are fused with input-dependent weights ``a_g(x)`` from a small gate on the
  pooled features of the token's own unit: ``out = proj(concat_g(a_g(x) * O_g))``, which equals
  ``sum_g a_g(x) * proj_g(O_g)``.

Tokens use the unit-major layout ``(B, U, T, C)`` of :mod:`coma.models.layers.units`, so the
same code runs the dense forward (all units) and the sparse masked forward (visible units only).
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .rel_pos import coords_rel_index, window_rel_index


@dataclass
class CoarsePlan:
    """How units are grouped for the coarse attention of one stage and shift.

    Attributes:
        index: ``(G, L)`` long indices into the flattened ``B*U`` units (``-1`` = padding slot), or
            None when the groups are simply the samples (``G = B``, ``L = U``).
        rel_index: ``(G or 1, L, L)`` long indices into the coarse bias table.
        key_mask: ``(G or 1, 1 or L, L)`` bool, True where a query unit may attend a key unit, or
            None when every pair may.
    """
    index: Optional[torch.Tensor]
    rel_index: torch.Tensor
    key_mask: Optional[torch.Tensor]


def _window_split(g: int, window: int, shifted: bool) -> Tuple[int, int]:
    """Window side and shift along one grid axis (a grid that fits one window is not shifted)."""
    if g <= window:
        return g, 0
    return window, (window // 2 if shifted else 0)


def dense_plan(batch: int, grid: Tuple[int, int], window: int, shifted: bool,
               device: torch.device) -> CoarsePlan:
    """Coarse windows over a full unit grid (Swin-style partition, padded and optionally shifted).

    Args:
        batch: batch size B.
        grid: ``(gh, gw)`` units.
        window: coarse window side in units.
        shifted: shift the windows by half a window (only along axes longer than one window).
        device: where the index tensors live.

    Returns:
        The :class:`CoarsePlan`.
    """
    (wh, sh), (ww, sw) = (_window_split(g, window, shifted) for g in grid)
    gh, gw = grid
    ph, pw = -(-(gh + sh) // wh) * wh, -(-(gw + sw) // ww) * ww
    ids = torch.full((ph, pw), -1, dtype=torch.long, device=device)
    ids[sh:sh + gh, sw:sw + gw] = torch.arange(gh * gw, device=device).view(gh, gw)
    ids = ids.view(ph // wh, wh, pw // ww, ww).permute(0, 2, 1, 3).reshape(-1, wh * ww)  # nW, L
    ys, xs = torch.meshgrid(torch.arange(wh, device=device), torch.arange(ww, device=device), indexing='ij')
    rel = coords_rel_index(torch.stack([ys.flatten(), xs.flatten()], -1), window)[None]  # 1, L, L
    if ids.shape[0] == 1 and sh == 0 and sw == 0:  # one window, no padding: identity grouping
        return CoarsePlan(None, rel, None)
    valid = ids >= 0
    offsets = torch.arange(batch, device=device).view(batch, 1, 1) * (gh * gw)
    index = torch.where(valid, ids + offsets, -1).reshape(-1, wh * ww)  # B*nW, L
    key_mask = None if bool(valid.all()) else valid.repeat(batch, 1)[:, None, :]
    return CoarsePlan(index, rel, key_mask)


def masked_plan(ids_keep: torch.Tensor, grid: Tuple[int, int], window: int, shifted: bool) -> CoarsePlan:
    """Coarse grouping for the visible units only: same windows as :func:`dense_plan`.

    Args:
        ids_keep: ``(B, N)`` row-major indices of the visible units.
        grid: ``(gh, gw)`` units of the full image.
        window: coarse window side in units.
        shifted: as in :func:`dense_plan`.

    Returns:
        The :class:`CoarsePlan` (groups are samples; keys outside a query's window are masked).
    """
    gh, gw = grid
    coords = torch.stack([ids_keep // gw, ids_keep % gw], dim=-1)  # B, N, 2
    (wh, sh), (ww, sw) = (_window_split(g, window, shifted) for g in grid)
    if wh == gh and ww == gw:  # the whole grid is one window: attend over all visible units
        return CoarsePlan(None, coords_rel_index(coords, window), None)
    win = torch.stack([(coords[..., 0] + sh) // wh, (coords[..., 1] + sw) // ww], -1)
    same = (win[:, :, None, :] == win[:, None, :, :]).all(-1)  # B, N, N
    local = torch.stack([(coords[..., 0] + sh) % wh, (coords[..., 1] + sw) % ww], -1)
    rel = coords_rel_index(local, window)  # pairs in other windows are masked anyway
    return CoarsePlan(None, rel, same)


class DMMSA(nn.Module):
    """Dynamic Multi-Window Self-Attention over unit-major tokens.

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
        self.num_heads, self.fine_heads = num_heads, fine_heads
        self.coarse_heads = num_heads - fine_heads
        self.head_dim = dim // num_heads
        self.unit_side, self.coarse_window = unit_side, coarse_window
        self.attn_drop = attn_drop
        fine_dim = fine_heads * self.head_dim
        coarse_dim = self.coarse_heads * self.head_dim
        # With one token per unit (the last stage) the fine window holds the token alone, so its
        # output is its value: no fine queries, keys or bias are needed.
        self.fine_attends = unit_side > 1
        self.q = nn.Linear(dim, dim if self.fine_attends else coarse_dim, bias=qkv_bias)
        self.kv_fine = nn.Linear(dim, 2 * fine_dim, bias=qkv_bias)
        # Applied to unit-pooled features: pooling commutes with the linear map, so this is the
        # projection of the pooled tokens at 1/T of the cost.
        self.kv_coarse = nn.Linear(dim, 2 * coarse_dim, bias=qkv_bias)
        self.gate = nn.Linear(dim, 2)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.coarse_bias_table = nn.Parameter(torch.zeros((2 * coarse_window - 1) ** 2, self.coarse_heads))
        nn.init.trunc_normal_(self.coarse_bias_table, std=0.02)
        if self.fine_attends:
            self.fine_bias_table = nn.Parameter(torch.zeros((2 * unit_side - 1) ** 2, fine_heads))
            self.register_buffer('fine_rel_index', window_rel_index(unit_side), persistent=False)
            nn.init.trunc_normal_(self.fine_bias_table, std=0.02)
        # Start from equal weights for both groups.
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def forward(self, x: torch.Tensor, plan: CoarsePlan) -> torch.Tensor:
        """Runs DM-MSA.

        Args:
            x: ``(B, U, T, C)`` unit-major tokens.
            plan: the coarse grouping for these units.

        Returns:
            ``(B, U, T, C)``.
        """
        b, u, t, c = x.shape
        hf, hc, d = self.fine_heads, self.coarse_heads, self.head_dim
        drop = self.attn_drop if self.training else 0.0
        pooled = x.mean(dim=2)  # B, U, C
        weights = self.gate(pooled).softmax(-1) * 2  # B, U, 2 ; mean 1 per group
        q = self.q(x).view(b * u, t, -1, d)

        # Fine group: attention inside each unit.  B*U, hf, T, d
        kv = self.kv_fine(x).view(b * u, t, 2, hf, d).permute(2, 0, 3, 1, 4)
        if not self.fine_attends:  # a one-token window attends only to itself
            o_fine = kv[1]
        else:
            bias = self.fine_bias_table[self.fine_rel_index].permute(2, 0, 1)[None]  # 1, hf, T, T
            o_fine = F.scaled_dot_product_attention(q[:, :, :hf].transpose(1, 2), kv[0], kv[1],
                                                    attn_mask=bias.to(x.dtype), dropout_p=drop)
        o_fine = o_fine.transpose(1, 2).reshape(b, u, t, hf * d)

        # Coarse group: every token attends to the pooled units of its window.
        kv = self.kv_coarse(pooled).view(b * u, 2, hc, d)
        o_coarse = self._coarse(q[:, :, -hc:], kv[:, 0], kv[:, 1], plan, drop)
        o_coarse = o_coarse.reshape(b, u, t, hc * d)

        out = torch.cat([o_fine * weights[..., :1, None], o_coarse * weights[..., 1:, None]], dim=-1)
        return self.proj_drop(self.proj(out))

    def _coarse(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: CoarsePlan,
                drop: float) -> torch.Tensor:
        """Coarse attention. q: ``(B*U, T, hc, d)``; k, v: ``(B*U, hc, d)``. Returns ``(B*U, T, hc, d)``."""
        n, t, hc, d = q.shape
        if plan.index is None:  # groups are the samples: n = G*L
            length = plan.rel_index.shape[-1]
            g = n // length
            gq, gk, gv = q.reshape(g, length, t, hc, d), k.view(g, length, hc, d), v.view(g, length, hc, d)
        else:
            g, length = plan.index.shape
            safe = plan.index.clamp(min=0)
            gq, gk, gv = q[safe], k[safe], v[safe]  # G, L, ...
        # Every token of a unit attends to the same L pooled keys: queries are the L*T tokens of
        # the group, keys the L units. The unit-offset bias is shared by a unit's T tokens.
        gq = gq.permute(0, 3, 1, 2, 4).reshape(g, hc, length * t, d)  # G, hc, L*T, d
        gk, gv = gk.transpose(1, 2), gv.transpose(1, 2)  # G, hc, L, d
        bias = self.coarse_bias_table[plan.rel_index].permute(0, 3, 1, 2)  # G|1, hc, L, L
        if plan.key_mask is not None:
            bias = bias.masked_fill(~plan.key_mask[:, None], float('-inf'))
        bias = bias.repeat_interleave(t, dim=2).to(q.dtype)  # G|1, hc, L*T, L
        out = F.scaled_dot_product_attention(gq, gk, gv, attn_mask=bias, dropout_p=drop)
        out = out.view(g, hc, length, t, d).permute(0, 2, 3, 1, 4)  # G, L, T, hc, d
        if plan.index is None:
            return out.reshape(n, t, hc, d)
        # Scatter the real slots back to their units (each unit sits in exactly one slot).
        keep = (plan.index >= 0).flatten()
        return q.new_zeros(n, t, hc, d).index_copy(0, plan.index.flatten()[keep], out.reshape(-1, t, hc, d)[keep])
