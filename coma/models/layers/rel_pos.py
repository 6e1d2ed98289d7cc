"""Relative position indices for DM-MSA's fine (token) and coarse (unit) windows."""
import torch


def window_rel_index(side: int) -> torch.Tensor:
    """Index into a ``(2*side-1)**2`` bias table for every pair of tokens in a square window.

    Args:
        side: window side in tokens.

    Returns:
        ``(side*side, side*side)`` long tensor.
    """
    ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing='ij')
    coords = torch.stack([ys.flatten(), xs.flatten()], dim=-1)  # T, 2
    return coords_rel_index(coords, side)


def coords_rel_index(coords: torch.Tensor, window: int) -> torch.Tensor:
    """Index into a ``(2*window-1)**2`` table for every pair of grid positions.

    Args:
        coords: ``(..., L, 2)`` long (row, col) positions whose pairwise offsets are below ``window``.
        window: the largest window side the table covers.

    Returns:
        ``(..., L, L)`` long tensor.
    """
    rel = coords[..., :, None, :] - coords[..., None, :, :] + (window - 1)  # ..., L, L, 2
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]
