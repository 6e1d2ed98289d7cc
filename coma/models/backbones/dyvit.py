"""DyViT: a hierarchical vision transformer with Dynamic Multi-Window Self-Attention.

Paper: Li et al., "CoMA: Complementary Masking and Hierarchical Dynamic Multi-Window
Self-Attention in a Unified Pre-training Framework" (Figure 4). The paper's exact architecture is
not available to us; this follows our SPEC (docs/design.md):

* 4 stages at strides 4/8/16/32 with widths ``C * (1, 2, 4, 8)``, a 4x4/stride-4 convolutional
  stem and 2x2 patch merging. Both act inside one 32-px mask unit, so nothing of a hidden unit
  reaches a visible one;
* every block is ``x + DMMSA(LN(x))`` then ``x + MLP(LN(x))``;
* tokens are kept per unit, ``(B, U, T, C)``, so the sparse masked forward (visible units only, cost
  proportional to the visible fraction) and the dense forward (any input size, padded to a multiple
  of 32) are the same code.

The blocks and stages here are plain modules; the backbone runs them through the fast executor
(:mod:`coma.models.layers.dm_msa_fast`, :attr:`DyViT.fast`), whose plans are built once per forward
and stage, and whose masked forward has static shapes and no host sync when it is given
``num_visible``: both forwards compile as one graph.
"""
import copy
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from timm.layers import DropPath, Mlp

from ..checkpoint import init_from_pretrained
from ..layers import dm_msa_fast as executor
from ..layers.dm_msa import DMMSA, CoarseWindows, unit_coords
from ..layers.units import UNIT, pad_to_multiple, tokens_to_map, visible_indices

#: Named variants. ``fine_heads`` is the number of in-unit heads per stage; the rest are coarse.
ARCH_SETTINGS: Dict[str, Dict] = {
    'nano': dict(embed_dim=32, depths=(2, 2, 6, 2), num_heads=(2, 4, 8, 16), fine_heads=(1, 2, 4, 8)),
    'tiny': dict(embed_dim=64, depths=(2, 2, 10, 2), num_heads=(2, 4, 8, 16), fine_heads=(1, 2, 4, 8)),
    'small': dict(embed_dim=72, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24), fine_heads=(1, 3, 6, 12)),
    'base': dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24), fine_heads=(1, 3, 6, 12)),
}
ARCH_KEYS = ('embed_dim', 'depths', 'num_heads', 'fine_heads')
NUM_STAGES = 4
STEM_STRIDE = 4


def unit_side(stage: int) -> int:
    """Tokens along one side of a 32-px unit at stage ``stage`` (8, 4, 2, 1)."""
    return UNIT // (STEM_STRIDE * 2 ** stage)


def take_indices(num_stages: int, indices: Optional[Union[int, Sequence[int]]]) -> Tuple[List[int], int]:
    """timm's stage selection: None (all), an int n (the last n) or indices (negative ones count from the
    end) -> the absolute indices, sorted, and the largest."""
    if indices is None:
        indices = num_stages
    if isinstance(indices, int):
        if not 0 < indices <= num_stages:
            raise ValueError(f'DyViT: the last {indices} stages asked for, of {num_stages}')
        indices = range(num_stages - indices, num_stages)
    taken = sorted({i + num_stages if i < 0 else i for i in indices})
    if not taken or taken[0] < 0 or taken[-1] >= num_stages:
        raise ValueError(f'DyViT: stage indices {list(indices)} out of range for {num_stages} stages')
    return taken, taken[-1]


def resolve_arch(arch: Union[str, Dict]) -> Dict:
    """Validates an architecture name or dict and returns a full setting.

    Args:
        arch: a key of :data:`ARCH_SETTINGS`, or a dict with exactly the keys in :data:`ARCH_KEYS`.

    Returns:
        A dict with the keys of :data:`ARCH_KEYS`.

    Raises:
        KeyError: an unknown name or key, naming the allowed ones.
        ValueError: inconsistent values.
    """
    if isinstance(arch, str):
        if arch not in ARCH_SETTINGS:
            raise KeyError(f"DyViT: unknown arch '{arch}'; allowed: {sorted(ARCH_SETTINGS)} or a dict "
                           f'with keys {list(ARCH_KEYS)}')
        return copy.deepcopy(ARCH_SETTINGS[arch])
    if not isinstance(arch, dict):
        raise TypeError(f'DyViT: arch must be a str or dict, got {type(arch).__name__}')
    unknown, missing = set(arch) - set(ARCH_KEYS), set(ARCH_KEYS) - set(arch)
    if unknown or missing:
        raise KeyError(f'DyViT arch dict: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}; '
                       f'allowed keys: {list(ARCH_KEYS)}')
    for key in ('depths', 'num_heads', 'fine_heads'):
        if len(arch[key]) != NUM_STAGES:
            raise ValueError(f'DyViT arch: {key} must have {NUM_STAGES} entries, got {arch[key]}')
    for i in range(NUM_STAGES):
        width = arch['embed_dim'] * 2 ** i
        if width % arch['num_heads'][i]:
            raise ValueError(f'DyViT arch: stage {i} width {width} not divisible by {arch["num_heads"][i]} heads')
    return dict(arch)


class DyViTBlock(nn.Module):
    """One DyViT block: DM-MSA and an MLP, each with pre-norm, residual and drop path.

    Args:
        dim: channels.
        num_heads: heads of DM-MSA.
        fine_heads: in-unit heads.
        unit_side: tokens per unit side at this stage.
        coarse_window: coarse window side in units.
        shifted: this block shifts its coarse windows (used only when the grid exceeds a window).
        mlp_ratio: MLP hidden width / dim.
        drop_path: stochastic depth rate.
    """

    def __init__(self, dim: int, num_heads: int, fine_heads: int, unit_side: int, coarse_window: int,
                 shifted: bool, mlp_ratio: float = 4.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.shifted = shifted
        self.norm1 = nn.LayerNorm(dim)
        self.attn = DMMSA(dim, num_heads, fine_heads, unit_side, coarse_window)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, coords: torch.Tensor, windows: CoarseWindows) -> torch.Tensor:
        """``(B, U, T, C)`` tokens of the units at ``coords`` ``(B, U, 2)`` -> the same shape."""
        x = x + self.drop_path(self.attn(self.norm1(x), coords, windows, self.shifted))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2x2 token merging inside each unit: ``(B, U, s*s, C) -> (B, U, s*s/4, 2C)``.

    Also takes unit-major rows ``(B*U*s*s, C)`` and returns rows ``(B*U*s*s/4, 2C)``.

    Args:
        dim: input channels.
        unit_side: tokens per unit side before merging (even).
    """

    def __init__(self, dim: int, unit_side: int) -> None:
        super().__init__()
        self.unit_side = unit_side
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, s, lead = x.shape[-1], self.unit_side, x.shape[:-2]
        # B*U, s/2, 2, s/2, 2, C -> B*U, s/2, s/2, 2, 2, C: the 2x2 neighbours of a merged token
        merged = self.reduction(self.norm(
            x.reshape(-1, s // 2, 2, s // 2, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, 4 * c)))
        return merged.view(*lead, s * s // 4, 2 * c) if x.dim() == 4 else merged  # rows in, rows out


class DyViTStage(nn.Module):
    """Blocks of one stage, then optional merging into the next stage."""

    def __init__(self, dim: int, depth: int, num_heads: int, fine_heads: int, unit_side: int,
                 coarse_window: int, mlp_ratio: float, drop_paths: Sequence[float], downsample: bool,
                 with_cp: bool) -> None:
        super().__init__()
        self.with_cp = with_cp
        self.blocks = nn.ModuleList(
            DyViTBlock(dim, num_heads, fine_heads, unit_side, coarse_window, shifted=bool(i % 2),
                       mlp_ratio=mlp_ratio, drop_path=drop_paths[i]) for i in range(depth))
        self.downsample = PatchMerging(dim, unit_side) if downsample else None

    def forward(self, x: torch.Tensor, coords: torch.Tensor,
                windows: CoarseWindows) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(B, U, T, C)`` tokens of the units at ``coords`` -> the stage output (before merging) and
        the input of the next stage."""
        for blk in self.blocks:
            if self.with_cp and x.requires_grad:
                x = cp.checkpoint(blk, x, coords, windows, use_reentrant=False)
            else:
                x = blk(x, coords, windows)
        return x, (self.downsample(x) if self.downsample is not None else x)


class DyViT(BaseModule):
    """DyViT backbone (registered as ``DyViT`` in mmengine, mmdet and mmseg, and as ``dyvit_*`` in timm).

    Args:
        arch: ``'nano' | 'tiny' | 'small' | 'base'`` or a dict with the keys of :data:`ARCH_KEYS`.
        in_channels: image channels.
        mlp_ratio: MLP hidden width / width.
        coarse_window: coarse attention window side in 32-px units (7 = the whole 224-px image).
        drop_path_rate: stochastic depth, rising linearly over all blocks.
        out_indices: stages whose features :meth:`forward` returns.
        frozen_stages: freeze the stem and stages ``< frozen_stages`` (-1: nothing; 0: the stem).
        with_cp: activation checkpointing per block.
        num_classes: deprecated: the backbone carries no classifier. A value > 0 builds the timm
            classification model (:class:`coma.models.timm_models.TimmDyViT`) instead, with a
            warning; use ``timm.create_model('dyvit_<arch>', num_classes=N)``.
        init_cfg: mmengine init config; ``type='Pretrained'`` loads through
            :func:`coma.models.checkpoint.load_backbone_checkpoint`, which fails on unexpected keys.
    """
    unit = UNIT
    #: run the blocks through the fast executor (:mod:`coma.models.layers.dm_msa_fast`): the same
    #: outputs as the plain modules (False), with fewer, larger and aligned kernels
    fast: bool = True
    #: Parameter-name fragments without weight decay beyond the 1-D ones: the relative-position
    #: tables and the DM-MSA gates (their zero init is the even fine/coarse mix).
    NO_WEIGHT_DECAY_KEYS = ('bias_table', '.gate.')

    #: the timm classifier that the deprecated ``num_classes`` builds (:mod:`coma.models.timm_models` sets it)
    classifier_cls: Optional[type] = None

    def __new__(cls, *args, num_classes: int = 0, **kwargs):
        if num_classes and cls is DyViT:  # the deprecated flag: build the timm classifier instead
            if DyViT.classifier_cls is None:
                raise ImportError('DyViT(num_classes=N) builds coma.models.timm_models.TimmDyViT: import coma first')
            warnings.warn('DyViT(num_classes=N) is deprecated: the backbone carries no classifier; use '
                          "timm.create_model('dyvit_<arch>', num_classes=N) (coma.models.timm_models.TimmDyViT)",
                          DeprecationWarning, stacklevel=2)
            return super().__new__(DyViT.classifier_cls)
        return super().__new__(cls)

    def __init__(self, arch: Union[str, Dict] = 'tiny', in_channels: int = 3, mlp_ratio: float = 4.0,
                 coarse_window: int = 7, drop_path_rate: float = 0.0,
                 out_indices: Sequence[int] = (0, 1, 2, 3), frozen_stages: int = -1, with_cp: bool = False,
                 init_cfg: Optional[Dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch = resolve_arch(arch)
        out_indices = tuple(out_indices) if isinstance(out_indices, (list, tuple)) else (out_indices,)
        if not out_indices or any(i not in range(NUM_STAGES) for i in out_indices):
            raise ValueError(f'DyViT: out_indices must be a non-empty subset of {tuple(range(NUM_STAGES))}, '
                             f'got {out_indices}')
        if not -1 <= frozen_stages <= NUM_STAGES:
            raise ValueError(f'DyViT: frozen_stages must be in [-1, {NUM_STAGES}], got {frozen_stages}')
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.coarse_window = coarse_window
        c = self.arch['embed_dim']
        depths = self.arch['depths']
        self.widths = [c * 2 ** i for i in range(NUM_STAGES)]  # channels of each stage
        # timm's names: the width of the last stage's map and of the pooled features
        self.num_features = self.head_hidden_size = self.widths[-1]
        self.unit_dim = self.widths[-1]  # feature size of one 32-px unit in forward_masked
        self.patch_embed = nn.Conv2d(in_channels, c, kernel_size=STEM_STRIDE, stride=STEM_STRIDE)
        self.embed_norm = nn.LayerNorm(c)
        # stochastic depth rising linearly over all blocks, split per stage
        dpr = [rates.tolist() for rates in torch.linspace(0, drop_path_rate, sum(depths)).split(depths)]
        self.stages = nn.ModuleList(DyViTStage(
            self.widths[i], depths[i], self.arch['num_heads'][i], self.arch['fine_heads'][i],
            unit_side=unit_side(i), coarse_window=coarse_window, mlp_ratio=mlp_ratio,
            drop_paths=dpr[i], downsample=i < NUM_STAGES - 1, with_cp=with_cp) for i in range(NUM_STAGES))
        for i in out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(self.widths[i]))
        self.feature_info = [dict(num_chs=self.widths[i], reduction=STEM_STRIDE * 2 ** i, module=f'norm{i}')
                             for i in out_indices]
        self.init_linears()
        self._freeze_stages()

    def init_linears(self) -> None:
        """Truncated-normal (std 0.02) weights and zero biases for every linear layer but the DM-MSA
        gates (``*.gate``), which keep their zero init: the even fine/coarse mix at the start."""
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear) and not name.endswith('.gate'):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def no_weight_decay(self) -> Set[str]:
        """Names of the parameters without weight decay (timm's convention; the pre-training and
        layer-decay optimizer constructors read it): norms and biases (1-D), the relative-position
        tables and the DM-MSA gates."""
        return {name for name, p in self.named_parameters()
                if p.ndim <= 1 or any(k in name for k in self.NO_WEIGHT_DECAY_KEYS)}

    def init_weights(self) -> None:
        """Loads ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=...)`` strictly; else default init."""
        if not init_from_pretrained(self):
            super().init_weights()

    @property
    def num_layers(self) -> int:
        """Layer ids for lr decay: stem 0, blocks 1..D; ``D + 1`` is everything after the backbone."""
        return sum(self.arch['depths']) + 1

    def get_layer_id(self, name: str) -> int:
        """Layer id of parameter ``name`` (relative to this module) for layer-wise lr decay.

        Stem 0; block j of stage i ``1 + sum(depths[:i]) + j``; stage i's merging and output norm
        belong with the first block after them (``1 + sum(depths[:i + 1])``); a head ``num_layers``.
        """
        depths = self.arch['depths']
        parts = name.split('.')
        if parts[0] in ('patch_embed', 'embed_norm'):
            return 0
        if parts[0] == 'stages':
            i = int(parts[1])
            if parts[2] == 'blocks':
                return 1 + sum(depths[:i]) + int(parts[3])
            return 1 + sum(depths[:i + 1])
        if parts[0].startswith('norm') and parts[0][4:].isdigit():
            return min(1 + sum(depths[:int(parts[0][4:]) + 1]), self.num_layers)
        return self.num_layers

    def _freeze_stages(self) -> None:
        frozen: List[nn.Module] = []
        if self.frozen_stages >= 0:
            frozen += [self.patch_embed, self.embed_norm]
        for i in range(max(self.frozen_stages, 0)):
            frozen.append(self.stages[i])
            if i in self.out_indices:
                frozen.append(getattr(self, f'norm{i}'))
        for m in frozen:
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> 'DyViT':
        super().train(mode)
        self._freeze_stages()
        return self

    def _embed_image(self, x: torch.Tensor, grid: Tuple[int, int], ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(B, 3, 32*gh, 32*gw)`` -> stage-1 token rows ``(B*U*64, C)``, unit-major, of every unit, or of the
        units ``ids`` ``(B, N)`` only. The stem's kernel equals its stride and never crosses a unit, so the
        whole image goes through it at once (fewer ops than cutting the image into units first); the
        visible units are gathered before the norm."""
        x = self.patch_embed(x)  # B, C, 8*gh, 8*gw
        s, c = unit_side(0), x.shape[1]
        x = x.view(x.shape[0], c, grid[0], s, grid[1], s).permute(0, 2, 4, 3, 5, 1)  # B, gh, gw, s, s, C
        if ids is not None:  # B, U, s*s*C -> the rows of the visible units
            x = torch.gather(x.reshape(x.shape[0], -1, s * s * c), 1, ids[:, :, None].expand(-1, -1, s * s * c))
        return self.embed_norm(x.reshape(-1, c))

    def _run(self, tokens: torch.Tensor, windows: CoarseWindows, make_plan: Callable, coords: Callable,
             stages: int, indices: Sequence[int], norm: bool = True) -> Tuple[List[torch.Tensor], torch.Tensor]:
        """Runs the first ``stages`` stages on the stem's token rows ``(B*U*T, C)`` of ``B`` samples' units.

        With :attr:`fast` the blocks run through :mod:`~coma.models.layers.dm_msa_fast`, whose coarse
        plans ``make_plan(shifted, tokens, heads)`` builds; else the plain modules run, on the units at
        ``coords()`` ``(B, U, 2)``.

        Returns:
            The outputs of the stages in ``indices`` as unit-major rows ``(B*U*T, C)``, each normed by
            its stage's output norm when ``norm`` and the stage has one; and the last stage's raw output.
        """
        outs, run = [], self.stages[:stages]
        if self.fast:
            plans = executor.stage_plans(make_plan, windows, run)
            x = tokens
        else:
            where = coords()
            x = tokens.view(*where.shape[:2], -1, tokens.shape[-1])  # B, U, T, C
        for i, stage in enumerate(run):
            if self.fast:
                out, x = executor.run_stage(stage, x, plans[i])
            else:
                out, x = stage(x, where, windows)
                out = out.reshape(-1, out.shape[-1])
            if i in indices:
                outs.append(getattr(self, f'norm{i}')(out) if norm and hasattr(self, f'norm{i}') else out)
        return outs, out

    def forward_intermediates(self, x: torch.Tensor, indices: Optional[Union[int, Sequence[int]]] = None,
                              norm: bool = False, stop_early: bool = False, output_fmt: str = 'NCHW',
                              intermediates_only: bool = False
                              ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Dense forward at any input size, returning the stage outputs (timm's interface).

        Args:
            x: ``(B, 3, H, W)``; padded internally to multiples of 32.
            indices: stages to return: None (all), an int n (the last n) or indices (negative ones
                count from the end).
            norm: norm each returned stage by its output norm, where it has one (``out_indices``).
            stop_early: run no stage after the last one returned (always so with ``intermediates_only``).
            output_fmt: ``'NCHW'`` only.
            intermediates_only: return only the maps.

        Returns:
            NCHW maps ``(B, C_i, ceil(H/r), ceil(W/r))`` for reductions r = 4, 8, 16, 32; unless
            ``intermediates_only``, after the final map (:meth:`forward_features`'s output: the last stage
            run, normed by its output norm if it has one).
        """
        if output_fmt != 'NCHW':
            raise ValueError(f"DyViT.forward_intermediates: output_fmt 'NCHW' only, got {output_fmt!r}")
        indices, last = take_indices(len(self.stages), indices)
        run = last + 1 if stop_early or intermediates_only else len(self.stages)
        b, _, h, w = x.shape
        x, _ = pad_to_multiple(x, UNIT)
        grid = (x.shape[2] // UNIT, x.shape[3] // UNIT)
        windows = CoarseWindows(grid, self.coarse_window)
        outs, final = self._run(
            self._embed_image(x, grid), windows, coords=lambda: unit_coords(grid, x.device).expand(b, -1, -1),
            make_plan=lambda shifted, t, heads: executor.dense_plan(b, grid, self.coarse_window, shifted, x.device,
                                                                    t, heads),
            stages=run, indices=indices, norm=norm)

        def to_map(rows: torch.Tensor, i: int) -> torch.Tensor:
            r = STEM_STRIDE * 2 ** i
            out = tokens_to_map(rows, grid, unit_side(i))
            if out.shape[-2:] != (-(-h // r), -(-w // r)):  # cut the padding off
                out = out[..., :-(-h // r), :-(-w // r)]
            return out.contiguous()
        maps = [to_map(out, i) for i, out in zip(indices, outs)]
        if intermediates_only:
            return maps
        if hasattr(self, f'norm{run - 1}'):
            final = getattr(self, f'norm{run - 1}')(final)
        return to_map(final, run - 1), maps

    def prune_intermediate_layers(self, indices: Union[int, Sequence[int]] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        """Drops the stages after the last of ``indices`` and what only they use (timm's interface).

        Args:
            indices: as in :meth:`forward_intermediates`.
            prune_norm: replace the output norms of the kept stages by identities.
            prune_head: drop a classifier (:class:`~coma.models.timm_models.TimmDyViT`'s).

        Returns:
            The absolute indices of ``indices``.
        """
        indices, last = take_indices(len(self.stages), indices)
        self.stages = self.stages[:last + 1]
        self.stages[-1].downsample = None
        for i in range(NUM_STAGES):
            if hasattr(self, f'norm{i}') and (i > last or prune_norm):
                delattr(self, f'norm{i}')
                if i <= last:
                    self.add_module(f'norm{i}', nn.Identity())
        self.out_indices = tuple(i for i in self.out_indices if i <= last) or (last,)
        if prune_head and hasattr(self, 'reset_classifier'):
            self.reset_classifier(0, '')
        return indices

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Activation checkpointing per block while training (timm's interface; ``with_cp`` in configs)."""
        for stage in self.stages:
            stage.with_cp = enable

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's NCHW map, normed (timm's interface): ``(B, C, ceil(H/32), ceil(W/32))``."""
        return self.forward_intermediates(x, indices=1)[0]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Dense forward at any input size: the multi-scale contract of mmdet's and mmseg's backbones.

        Args:
            x: ``(B, 3, H, W)``; padded internally to multiples of 32.

        Returns:
            A tuple of NCHW maps, one per ``out_indices`` entry, each normed by its output norm (see
            :meth:`forward_intermediates`).
        """
        return tuple(self.forward_intermediates(x, self.out_indices, norm=True, intermediates_only=True))

    def forward_masked(self, x: torch.Tensor, mask: torch.Tensor, num_visible: Optional[int] = None) -> torch.Tensor:
        """Sparse forward over the visible units only (work scales with the visible fraction).

        Args:
            x: ``(B, 3, H, W)`` with H and W multiples of 32.
            mask: ``(B, H/32, W/32)`` bool, True = hidden, the same hidden count in every sample.
            num_visible: the visible units per sample (the algorithms know it from the mask ratio);
                then the mask is not checked again and the call has static shapes and no host sync
                (it compiles as one graph). When None it is counted from the mask, with a check.

        Returns:
            ``(B, N_visible, C_last)``: last-stage features of the visible units, row-major order,
            normed by the last output norm.
        """
        b, _, h, w = x.shape
        grid = (h // UNIT, w // UNIT)
        if mask.shape != (b, *grid):
            raise ValueError(f'DyViT.forward_masked: mask shape {tuple(mask.shape)} does not match images '
                             f'{tuple(x.shape)}; expected {(b, *grid)}')
        if len(self.stages) != NUM_STAGES or NUM_STAGES - 1 not in self.out_indices:
            raise ValueError('DyViT.forward_masked needs every stage and the last one in out_indices')
        keys = None  # the visible units, then hidden ones up to a multiple of ALIGN: the biases' key rows
        if num_visible is not None and executor.padded(num_visible) <= grid[0] * grid[1]:
            keys = visible_indices(mask, executor.padded(num_visible))  # B, N': one sort for both
            ids = keys[:, :num_visible]
        else:
            ids = visible_indices(mask, num_visible)  # B, N
        last, n = NUM_STAGES - 1, ids.shape[1]
        windows = CoarseWindows(grid, self.coarse_window)
        rels = {}
        if self.fast:  # built once per forward for all blocks
            for shifted in windows.shifts:
                rel, masked = executor.masked_rel_index(ids, grid, self.coarse_window, shifted, keys)
                rels[shifted] = rel.view(b, 1, n, 1, rel.shape[-1]), masked  # the view every stage's plan reads
        outs, _ = self._run(self._embed_image(x, grid, ids), windows, stages=NUM_STAGES, indices=(last,),
                            make_plan=lambda shifted, t, heads: executor.plan_for_stage(*rels[shifted], t, heads),
                            coords=lambda: torch.stack([ids // grid[1], ids % grid[1]], -1))
        return outs[0].view(b, n, -1)  # B, N, C_last (T = 1)
