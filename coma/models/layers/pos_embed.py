"""Fixed 2-D sin-cos position embeddings (MAE's), for any grid size."""
from typing import Tuple

import torch


def sincos_2d(grid: Tuple[int, int], dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """2-D sin-cos embeddings, half the channels for rows and half for columns.

    Args:
        grid: ``(gh, gw)`` positions.
        dim: channels; must divide by 4.
        temperature: frequency base.

    Returns:
        ``(gh*gw, dim)`` float32, row-major.
    """
    if dim % 4:
        raise ValueError(f'sin-cos embedding dim must divide by 4, got {dim}')
    ys, xs = torch.meshgrid(torch.arange(grid[0], dtype=torch.float32),
                            torch.arange(grid[1], dtype=torch.float32), indexing='ij')
    omega = 1.0 / temperature ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))
    parts = []
    for pos in (ys.flatten(), xs.flatten()):
        angles = pos[:, None] * omega[None]
        parts += [angles.sin(), angles.cos()]
    return torch.cat(parts, dim=1)
