"""DyViT: a hierarchical vision transformer with Dynamic Multi-Window Self-Attention.

Paper: Li et al., "CoMA: Complementary Masking and Hierarchical Dynamic Multi-Window
Self-Attention in a Unified Pre-training Framework" (Figure 4). The paper's exact architecture is
not available to us; this follows our SPEC (docs/design.md):

* 4 stages at strides 4/8/16/32 with widths ``C * (1, 2, 4, 8)``, a 4x4/stride-4 convolutional
  stem and 2x2 patch merging. Both act inside one 32-px mask unit, so nothing of a hidden unit
  reaches a visible one;
* every block is ``x + DMMSA(LN(x))`` then ``x + MLP(LN(x))``;
* tokens are kept as unit-major rows, ``(B*U*T, C)``, so the sparse masked forward (visible units
  only, cost proportional to the visible fraction) and the dense forward (any input size, padded to
  a multiple of 32) are the same code. The coarse-attention plans are built once per forward and
  stage, so no block rebuilds an index, and the masked forward has static shapes and no host sync
  when it is given ``num_visible``: both forwards compile as one graph.
"""
import copy
import warnings
from typing import Dict, List, Optional, Sequence, Set, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from timm.layers import DropPath, Mlp

from ..checkpoint import init_from_pretrained
from ..layers.dm_msa import (DMMSA, CoarsePlan, Gathered, autocast_dtype, coarse_biases, dense_plan, fine_bias_index,
                             fine_biases, fused_weights, masked_rel_index, padded, plan_for_stage)
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

    def forward(self, x: torch.Tensor, plan: CoarsePlan, gathered: Optional[Gathered] = None) -> torch.Tensor:
        """x: ``(B*U*T, C)`` unit-major rows -> the same (``gathered``: see :meth:`DMMSA.forward`)."""
        x = x + self._drop(self.attn(self.norm1(x), plan, gathered), plan.batch)
        if gathered is None or gathered.fc1_weight is None:
            return x + self._drop(self.mlp(self.norm2(x)), plan.batch)
        # the MLP with the stage's transposed weights (timm's Mlp without its zero dropouts)
        h = self.mlp.act(torch.addmm(gathered.fc1_bias, self.norm2(x), gathered.fc1_weight))
        return x + self._drop(torch.addmm(gathered.fc2_bias, h, gathered.fc2_weight), plan.batch)

    def _drop(self, y: torch.Tensor, batch: int) -> torch.Tensor:
        """Drop path per sample (rows are grouped by sample first)."""
        if isinstance(self.drop_path, nn.Identity) or not self.training:
            return y
        return self.drop_path(y.view(batch, -1, y.shape[-1])).view(y.shape)


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
    """Blocks of one stage, then optional merging into the next stage.

    The relative-position biases of all blocks are gathered once per forward, with one ``take`` per
    table kind and coarse plan, and the weights of their ``q``/``kv_fine`` GEMMs with one ``cat``
    (not six small ops per block, a ninth of DyViT-B's ATen ops).
    """
    #: Pack the output projections and MLPs with the attention weights (:func:`fused_weights`'s ``pack``):
    #: None (auto: under autocast or off the CPU), or True / False to force it (tests, benchmarks).
    pack_weights: Optional[bool] = None

    def __init__(self, dim: int, depth: int, num_heads: int, fine_heads: int, unit_side: int,
                 coarse_window: int, mlp_ratio: float, drop_paths: Sequence[float], downsample: bool,
                 with_cp: bool) -> None:
        super().__init__()
        self.with_cp = with_cp
        self.blocks = nn.ModuleList(
            DyViTBlock(dim, num_heads, fine_heads, unit_side, coarse_window, shifted=bool(i % 2),
                       mlp_ratio=mlp_ratio, drop_path=drop_paths[i]) for i in range(depth))
        self.downsample = PatchMerging(dim, unit_side) if downsample else None
        # the fine tables of all blocks side by side: (rows, depth * fine_heads)
        self.fine_heads = fine_heads
        if unit_side > 1 and depth > 1:
            self.register_buffer('fine_bias_index', fine_bias_index(unit_side, depth * fine_heads), persistent=False)
        else:
            self.fine_bias_index = None

    @staticmethod
    def plan_heads(depth: int, coarse_heads: int, shared: bool) -> Tuple[int, int]:
        """Heads the (unshifted, shifted) coarse plans of a stage are built for: those of the blocks
        that use each (all of them when one plan serves both, ``shared``)."""
        if shared:
            return depth * coarse_heads, depth * coarse_heads
        return (depth + 1) // 2 * coarse_heads, max(1, depth // 2) * coarse_heads

    def _gather(self, plans: Tuple[CoarsePlan, CoarsePlan]) -> List[Gathered]:
        """Per block, its relative-position biases and the transposed weights of its GEMMs (under autocast
        cast once per stage to the autocast dtype, as the attention and the GEMMs would cast them; the
        biases after their float32 gather, so that the tables' gradients accumulate in float32)."""
        attns = [blk.attn for blk in self.blocks]
        dtype = autocast_dtype(attns[0].proj.weight)
        fine: List[Optional[torch.Tensor]] = [None] * len(attns)
        if self.fine_bias_index is not None:
            fine = fine_biases([a.fine_bias_table for a in attns], self.fine_bias_index, self.fine_heads, dtype)
        coarse: List[Optional[torch.Tensor]] = [None] * len(attns)
        shared = plans[0] is plans[1]
        for shifted, plan in enumerate(plans[:1] if shared else plans):
            members = [i for i, blk in enumerate(self.blocks) if shared or int(blk.shifted) == shifted]
            if members:
                for i, bias in zip(members, coarse_biases([attns[i].coarse_bias_table for i in members], plan, dtype)):
                    coarse[i] = bias
        weights = fused_weights(attns, [blk.mlp for blk in self.blocks], self.pack_weights)
        return [g._replace(fine_bias=f, coarse_bias=c) for f, c, g in zip(fine, coarse, weights)]

    def forward(self, x: torch.Tensor, plans: Tuple[CoarsePlan, CoarsePlan]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Returns the stage output (before merging) and the input of the next stage.

        Args:
            x: ``(B*U*T, C)`` unit-major rows.
            plans: the coarse plans of this stage, unshifted and shifted (the same object when the
                grid fits one window), built for the heads :meth:`plan_heads` gives.
        """
        for blk, gathered in zip(self.blocks, self._gather(plans)):
            plan = plans[int(blk.shifted)]
            if self.with_cp and x.requires_grad:
                x = cp.checkpoint(blk, x, plan, gathered, use_reentrant=False)
            else:
                x = blk(x, plan, gathered)
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

    def _stage_plans(self, make, grid: Tuple[int, int], stages: int) -> List[Tuple[CoarsePlan, CoarsePlan]]:
        """The (unshifted, shifted) coarse plans of the first ``stages`` stages; ``make(shifted, tokens,
        heads)`` builds one. A grid that fits one window is never shifted: one plan serves every block."""
        shared = max(grid) <= self.coarse_window
        plans = []
        for i in range(stages):
            tokens = unit_side(i) ** 2
            coarse_heads = self.arch['num_heads'][i] - self.arch['fine_heads'][i]
            heads = DyViTStage.plan_heads(self.arch['depths'][i], coarse_heads, shared)
            if shared:
                plan = make(False, tokens, heads[0])
                plans.append((plan, plan))
            else:
                plans.append((make(False, tokens, heads[0]), make(True, tokens, heads[1])))
        return plans

    def _run(self, x: torch.Tensor, plans: Sequence[Tuple[CoarsePlan, CoarsePlan]],
             indices: Sequence[int], norm: bool = True) -> Tuple[List[torch.Tensor], torch.Tensor]:
        """Runs the stages that ``plans`` cover (the first ``len(plans)``).

        Returns:
            The outputs of the stages in ``indices`` as unit-major rows ``(B*U*T, C)``, each normed by
            its stage's output norm when ``norm`` and the stage has one; and the last stage's raw output.
        """
        outs = []
        for i, (stage, plan) in enumerate(zip(self.stages, plans)):
            out, x = stage(x, plan)
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
        plans = self._stage_plans(lambda shifted, t, heads: dense_plan(b, grid, self.coarse_window, shifted, x.device,
                                                                       t, heads), grid, run)
        outs, final = self._run(self._embed_image(x, grid), plans, indices, norm)

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
        if num_visible is not None and padded(num_visible) <= grid[0] * grid[1]:
            keys = visible_indices(mask, padded(num_visible))  # B, N': one sort for both
            ids = keys[:, :num_visible]
        else:
            ids = visible_indices(mask, num_visible)  # B, N
        last, n = NUM_STAGES - 1, ids.shape[1]
        # built once per forward for all blocks; a grid that fits one window is never shifted
        shifts = (False,) if max(grid) <= self.coarse_window else (False, True)
        rels = {}
        for shifted in shifts:
            rel, masked = masked_rel_index(ids, grid, self.coarse_window, shifted, keys)
            rels[shifted] = rel.view(b, 1, n, 1, rel.shape[-1]), masked  # the view every stage's plan reads (keys padded)
        plans = self._stage_plans(lambda shifted, t, heads: plan_for_stage(*rels[shifted], t, heads), grid, NUM_STAGES)
        tokens = self._embed_image(x, grid, ids)
        return self._run(tokens, plans, (last,))[0][0].view(b, n, -1)  # B, N, C_last (T = 1)
