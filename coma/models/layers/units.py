"""Mask-unit layout helpers shared by DyViT and the CoMA algorithm.

CoMA (Li et al., "CoMA: Complementary Masking and Hierarchical Dynamic Multi-Window Self-Attention
in a Unified Pre-training Framework") masks 32x32-pixel units. DyViT keeps its tokens in a
*unit-major* layout ``(B, U, T, C)``: ``U`` units (all of them in dense mode, only the visible ones
in masked mode), each holding ``T = s*s`` tokens in row-major order, where ``s = unit / stride``.
Because every stem and merge operation stays inside one unit, no pixel of a hidden unit can reach
a visible one.

Mask convention, everywhere in this package: ``True`` = hidden.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

#: side of a mask unit in pixels (DyViT's total stride)
UNIT = 32


def pad_to_multiple(x: torch.Tensor, multiple: int) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Zero-pads an NCHW batch at the bottom and right to multiples of ``multiple``.

    Args:
        x: ``(B, C, H, W)`` images.
        multiple: the size both sides are rounded up to.

    Returns:
        The padded ``(B, C, H', W')`` batch and the original ``(H, W)``.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    return x, (h, w)


def image_to_units(x: torch.Tensor, unit: int) -> torch.Tensor:
    """Cuts images into non-overlapping unit crops in row-major unit order.

    Args:
        x: ``(B, C, H, W)`` with ``H`` and ``W`` multiples of ``unit``.
        unit: unit side in pixels.

    Returns:
        ``(B, gh*gw, C, unit, unit)``.
    """
    b, c, h, w = x.shape
    if h % unit or w % unit:
        raise ValueError(f'image size {h}x{w} is not a multiple of the unit size {unit}')
    gh, gw = h // unit, w // unit
    x = x.reshape(b, c, gh, unit, gw, unit).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, gh * gw, c, unit, unit)


def units_to_image(x: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`image_to_units`.

    Args:
        x: ``(B, gh*gw, C, u, u)``.
        grid: ``(gh, gw)``.

    Returns:
        ``(B, C, gh*u, gw*u)``.
    """
    b, _, c, u, _ = x.shape
    gh, gw = grid
    return x.reshape(b, gh, gw, c, u, u).permute(0, 3, 1, 4, 2, 5).reshape(b, c, gh * u, gw * u)


def tokens_to_map(x: torch.Tensor, grid: Tuple[int, int], side: int) -> torch.Tensor:
    """Turns unit-major tokens of a full grid into an NCHW feature map.

    Args:
        x: ``(B, gh*gw, s*s, C)`` unit-major tokens, or the same as rows ``(B*gh*gw*s*s, C)``.
        grid: ``(gh, gw)`` units.
        side: tokens per unit side ``s``.

    Returns:
        ``(B, C, gh*s, gw*s)``.
    """
    c, s = x.shape[-1], side
    gh, gw = grid
    x = x.reshape(-1, gh, gw, s, s, c).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(-1, c, gh * s, gw * s)


def visible_indices(mask: torch.Tensor, num_visible: Optional[int] = None) -> torch.Tensor:
    """Row-major indices of the visible units of each sample.

    Args:
        mask: ``(B, gh, gw)`` bool, True = hidden; every sample must hide the same number of units.
        num_visible: the visible units per sample, when the caller knows it (e.g. from the mask
            ratio). Then nothing is checked and nothing waits for the device, so the call compiles
            into a graph with static shapes; when None it is counted from the mask and checked.

    Returns:
        ``(B, N_visible)`` long indices into the flattened ``gh*gw`` grid, ascending.

    Raises:
        ValueError: a mask that is not ``(B, gh, gw)`` bool, or (``num_visible`` None) samples that
            keep different numbers of units.
    """
    if mask.dtype != torch.bool or mask.dim() != 3:
        raise ValueError(f'mask must be a (B, gh, gw) bool tensor, got {tuple(mask.shape)} {mask.dtype}')
    flat = mask.flatten(1)
    if num_visible is None:
        counts = (~flat).sum(1)
        if not bool((counts == counts[0]).all()):
            raise ValueError(f'every sample must keep the same number of units, got {counts.tolist()}')
        num_visible = int(counts[0])
    # A stable sort puts visible (False) units first, each group in ascending order.
    order = torch.sort(flat.to(torch.uint8), dim=1, stable=True).indices
    return order[:, :num_visible]
