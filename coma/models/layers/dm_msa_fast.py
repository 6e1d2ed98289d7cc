"""The fast executor of DM-MSA (:mod:`.dm_msa`, the definition): the same weights, the same outputs
(tested equal forward and backward, dense and masked), fewer and larger kernels.

* **Plans.** Every index the coarse attention needs is built once per forward and stage, outside the
  blocks (:class:`CoarsePlan`: dense plans are cached per batch, grid, shift, stage and device; the
  masked ones read a cached table of every pair of units of the grid), from the windows of
  :class:`~.dm_msa.CoarseWindows`, and holds no data-dependent shapes, so the forward compiles as one
  graph.
* **Gathered weights and biases.** A stage gathers the biases of all its layers with one ``take`` per
  table kind and plan (:func:`coarse_biases`, :func:`fine_biases`) and the weights of their GEMMs with
  one ``cat`` (:func:`fused_weights`); each layer then makes two GEMMs (``q`` with the fine keys/values,
  which read the same tokens; the coarse keys/values with a per-head gate logit, which read the same
  pooled rows), one fused SDPA call per head group, and weighs its heads with one ``tanh`` and one
  ``addcmul`` (:func:`gate_rows`: the gate's softmax of two logits as one logit per head).
* **The fused CUDA kernels' layout** (:mod:`coma.analysis.kernel_contract`): their q, k and v need
  16-byte-aligned strides and a mask whose rows are a multiple of 8 elements long, or PyTorch copies it.
  So the pooled GEMM's rows are padded to a multiple of :data:`ALIGN` (zero gate rows), and the bias
  indices are built with key rows padded to :data:`ALIGN` and sliced after the gather. The bias tables
  are gathered in their own dtype (float32) and cast after the gather, so their gradients are
  accumulated in float32 under autocast.

Tokens are unit-major rows ``(B*U*T, C)`` for ``B`` samples of ``U`` units (all of them in dense mode,
only the visible ones in masked mode) of ``T = s*s`` tokens each (:mod:`coma.models.layers.units`).
"""
from collections import namedtuple
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp

from .dm_msa import DMMSA, CoarseWindows, unit_coords
from .rel_pos import coords_rel_index

#: elements that rows of the attention inputs are padded to (16 bytes in half precision; PyTorch's
#: alignment for attention masks)
ALIGN = 8


def padded(n: int) -> int:
    """``n`` rounded up to a multiple of :data:`ALIGN`."""
    return -(-n // ALIGN) * ALIGN


def _pad_keys(rel: torch.Tensor) -> torch.Tensor:
    """Pads the last (key) dim of table rows to :data:`ALIGN` with row 0 (read, then sliced off)."""
    pad = padded(rel.shape[-1]) - rel.shape[-1]
    return F.pad(rel, (0, pad)) if pad else rel


@dataclass
class CoarsePlan:
    """How the units of one stage are grouped for the coarse attention.

    Attributes:
        batch: samples B.
        units: units per sample U.
        tokens: tokens per unit T at the stage the plan is for.
        heads: coarse heads of that stage.
        bias_index: ``(G or 1, heads, L, 1, L')`` long indices into the flattened coarse bias table
            ``(rows, heads)``, keys padded to ``L'`` (a multiple of :data:`ALIGN`, sliced off after the
            gather); pairs that may not attend point into one extra row of ``-inf``. The
            bias is gathered at this size and expanded over the T tokens of a query unit (so its
            gradient is a sum over T, not a scatter of L*T*L values into the small table).
        masked: whether ``bias_index`` uses that extra row.
        index: ``(G, L)`` long: the unit (in ``0..B*U-1``) in each window slot (padding slots hold
            unit 0 and are masked as keys), or None when the groups are the samples (``G = B``,
            ``L = U``).
        inverse: ``(B*U,)`` long: each unit's slot in the flattened ``G*L`` slots (None with
            ``index``).
    """
    batch: int
    units: int
    tokens: int
    heads: int
    bias_index: torch.Tensor
    masked: bool
    index: Optional[torch.Tensor] = None
    inverse: Optional[torch.Tensor] = None


def _bias_index(rel: torch.Tensor, tokens: int, heads: int) -> torch.Tensor:
    """``(G, L, L')`` table rows (or their ``(G, 1, L, 1, L')`` view) -> ``(G, heads, L, 1, L')`` flat indices
    into a ``(rows, heads)`` table.

    Every token of a query unit shares that unit's row of offsets (``tokens`` is checked by the layer).
    """
    if rel.dim() == 3:
        rel = rel.view(rel.shape[0], 1, rel.shape[1], 1, rel.shape[2])
    return torch.add(_cached(('heads', heads), rel.device, lambda: torch.arange(heads, device=rel.device).view(
        1, heads, 1, 1, 1)), rel, alpha=heads)  # rel * heads + head: G, heads, L, 1, L


_CACHE: Dict[tuple, Any] = {}
_CACHE_MAX = 64  # distinct keys kept; detection sees a few sizes per run


def _cached(key: tuple, device: torch.device, make: Callable[[], Any]) -> Any:
    """``make()``, a constant of ``key`` on ``device`` (plans, index tensors), kept between forwards
    (under ``torch.compile`` it is built in the graph, which folds it)."""
    if torch.compiler.is_compiling():
        return make()
    key = key + (str(device),)
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = make()
    return _CACHE[key]


def dense_plan(batch: int, grid: Tuple[int, int], window: int, shifted: bool, device: torch.device,
               tokens: int = 1, heads: int = 1) -> CoarsePlan:
    """Coarse windows over a full unit grid (Swin-style partition, padded and optionally shifted).

    Plans hold only constants of their arguments, so they are cached (outside ``torch.compile``,
    which folds them into the graph instead).

    Args:
        batch: batch size B.
        grid: ``(gh, gw)`` units.
        window: coarse window side in units.
        shifted: shift the windows by half a window (only along axes longer than one window).
        device: where the index tensors live.
        tokens: tokens per unit T of the stage.
        heads: coarse heads of the stage.

    Returns:
        The :class:`CoarsePlan`.
    """
    device = torch.device(device)
    return _cached(('dense', batch, tuple(grid), window, shifted, tokens, heads), device,
                   lambda: _build_dense_plan(batch, grid, window, shifted, device, tokens, heads))


def _build_dense_plan(batch: int, grid: Tuple[int, int], window: int, shifted: bool, device: torch.device,
                      tokens: int, heads: int) -> CoarsePlan:
    windows = CoarseWindows(grid, window)
    (wh, sh), (ww, sw) = windows.split(shifted)
    gh, gw = grid
    rel = coords_rel_index(unit_coords((wh, ww), device), window)[None]  # 1, L, L: the slots of one window
    if wh == gh and ww == gw:  # one window: the groups are the samples
        return CoarsePlan(batch, gh * gw, tokens, heads, _bias_index(_pad_keys(rel), tokens, heads), masked=False)
    length = wh * ww
    n_win = -(-(gh + sh) // wh) * -(-(gw + sw) // ww)
    win, local = windows.place(unit_coords(grid, device), shifted)
    slot_of = win * length + local[:, 0] * ww + local[:, 1]  # U: each unit's slot in the windows' slots
    ids = torch.full((n_win * length,), -1, dtype=torch.long, device=device)
    ids[slot_of] = torch.arange(gh * gw, device=device)
    ids = ids.view(n_win, length)  # nW, L: the unit in each slot, -1 in padding slots
    valid = ids >= 0
    masked = n_win * length != gh * gw  # some slots are padding
    if masked:  # padding slots may not be attended: point them at the -inf row
        rel = torch.where(valid[:, None, :], rel, (2 * window - 1) ** 2)  # nW, L, L
    rel = _pad_keys(rel.expand(batch, -1, -1, -1).reshape(-1, length, length) if masked else rel)
    offsets = torch.arange(batch, device=device).view(batch, 1, 1) * (gh * gw)
    index = torch.where(valid, ids + offsets, 0).reshape(-1, length)  # B*nW, L
    inverse = (slot_of[None] + torch.arange(batch, device=device)[:, None] * (n_win * length)).flatten()
    return CoarsePlan(batch, gh * gw, tokens, heads, _bias_index(rel, tokens, heads), masked, index, inverse)


def masked_plan(ids_keep: torch.Tensor, grid: Tuple[int, int], window: int, shifted: bool,
                tokens: int = 1, heads: int = 1) -> CoarsePlan:
    """Coarse grouping for the visible units only: same windows as :func:`dense_plan`.

    Sync-free: shapes depend only on ``ids_keep.shape``.

    Args:
        ids_keep: ``(B, N)`` row-major indices of the visible units.
        grid: ``(gh, gw)`` units of the full image.
        window: coarse window side in units.
        shifted: as in :func:`dense_plan`.
        tokens: tokens per unit T of the stage.
        heads: coarse heads of the stage.

    Returns:
        The :class:`CoarsePlan` (groups are samples; keys outside a query's window are masked).
    """
    rel, masked = masked_rel_index(ids_keep, grid, window, shifted)
    return CoarsePlan(ids_keep.shape[0], ids_keep.shape[1], tokens, heads, _bias_index(rel, tokens, heads), masked)


def masked_rel_index(ids_keep: torch.Tensor, grid: Tuple[int, int], window: int,
                     shifted: bool, keys: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, bool]:
    """``(B, N, N')`` coarse-table rows between the visible units (``(2w-1)**2`` = may not attend), keys
    padded to ``N'``, a multiple of :data:`ALIGN` (the padding reads unit 0's rows and is sliced off).

    Read with one gather from the rows of every pair of units of the full grid (:func:`grid_rel_index`,
    cached). Shared by the stages of one masked forward; :func:`masked_plan` expands it per stage.

    Args:
        ids_keep: ``(B, N)`` indices of the visible units.
        grid, window, shifted: as in :func:`grid_rel_index`.
        keys: ``(B, N')``: ``ids_keep`` followed by any units, ``N'`` a multiple of :data:`ALIGN` (the
            caller may have them from its sort); None: ``ids_keep`` padded here.

    Returns:
        The rows and whether any pair is masked.
    """
    table, masked = grid_rel_index(grid, window, shifted, ids_keep.device)
    keys = _pad_keys(ids_keep) if keys is None else keys
    return table[ids_keep[:, :, None], keys[:, None, :]], masked


def grid_rel_index(grid: Tuple[int, int], window: int, shifted: bool,
                   device: torch.device) -> Tuple[torch.Tensor, bool]:
    """``(U, U)`` coarse-table rows between every pair of units of a ``(gh, gw)`` grid, row-major
    (:meth:`CoarseWindows.rel_index`, cached), and whether any pair is masked."""
    windows = CoarseWindows(grid, window)
    (wh, _), (ww, _) = windows.split(shifted)
    one_window = (wh, ww) == tuple(grid)
    return _cached(('grid_rel', *grid, window, shifted), device,
                   lambda: windows.rel_index(unit_coords(grid, device), shifted)), not one_window


def plan_for_stage(rel: torch.Tensor, masked: bool, tokens: int, heads: int) -> CoarsePlan:
    """A masked-forward :class:`CoarsePlan` from the shared rows of :func:`masked_rel_index`, ``(B, N, N')``
    or their ``(B, 1, N, 1, N')`` view (which the stages of one forward can share)."""
    return CoarsePlan(rel.shape[0], rel.shape[-3] if rel.dim() == 5 else rel.shape[1], tokens, heads,
                      _bias_index(rel, tokens, heads), masked)


def coarse_biases(tables: Sequence[torch.Tensor], plan: CoarsePlan,
                  dtype: Optional[torch.dtype] = None) -> List[torch.Tensor]:
    """The coarse biases of the layers that share ``plan``, gathered with one ``take``.

    Args:
        tables: each layer's ``(rows, hc)`` coarse bias table; the plan is built for
            ``heads = len(tables) * hc``.
        plan: the coarse grouping.
        dtype: cast the gathered biases to it (once, not per layer; None: keep the tables'). The
            gather reads the tables in their own dtype, so their gradients accumulate in it.

    Returns:
        Per layer, ``(G or 1, hc, L*T, L)`` with last stride 1 and rows ``L'`` long (a multiple of
        :data:`ALIGN`): each query unit's row of offsets expanded over its T tokens, ``-inf`` where a
        pair may not attend.
    """
    hc = tables[0].shape[1]
    if plan.heads != hc * len(tables):
        raise ValueError(f'coarse_biases: plan built for {plan.heads} heads, tables hold {len(tables)} x {hc}')
    table = torch.cat(list(tables), 1) if len(tables) > 1 else tables[0]  # rows, m*hc
    if plan.masked:  # one extra row for the pairs that may not attend
        table = F.pad(table, (0, 0, 0, 1), value=float('-inf'))
    bias = table.take(plan.bias_index)  # G|1, m*hc, L, 1, L'
    bias = bias.to(dtype) if dtype is not None else bias
    g, heads, length, _, keys = bias.shape
    bias = bias.expand(-1, -1, -1, plan.tokens, -1).reshape(g, heads, length * plan.tokens, keys)
    bias = bias[..., :length] if keys != length else bias  # rows stay L' long: aligned
    return list(bias.split(hc, dim=1)) if len(tables) > 1 else [bias]


def fine_biases(tables: Sequence[torch.Tensor], index: torch.Tensor, heads: int,
                dtype: Optional[torch.dtype] = None) -> List[torch.Tensor]:
    """The fine biases of the layers whose ``(rows, heads)`` tables are ``tables``, with one ``take``.

    Args:
        tables: each layer's fine bias table.
        index: :func:`fine_bias_index` for ``len(tables) * heads`` heads.
        heads: fine heads per layer.
        dtype: cast the gathered biases to it (None: keep the tables').

    Returns:
        Per layer, ``(1, heads, T, T)`` with last stride 1 and rows padded to a multiple of :data:`ALIGN`.
    """
    table = torch.cat(list(tables), 1) if len(tables) > 1 else tables[0]  # rows, m*heads
    bias = table.take(index)  # 1, m*heads, T, T'
    bias = bias.to(dtype) if dtype is not None else bias
    tokens = bias.shape[2]
    bias = bias[..., :tokens] if bias.shape[3] != tokens else bias
    return list(bias.split(heads, dim=1)) if len(tables) > 1 else [bias]


#: What a stage gathers for one block before running its blocks (None: the layer gathers it).
#:
#: Weights are transposed, ``(in, out)``, for ``addmm``, and cast once per stage to the autocast dtype
#: when autocast is on (:func:`fused_weights`). Fields: ``fine_bias`` ``(1, hf, T, T)``;
#: ``coarse_bias`` ``(G or 1, hc, L*T, L)`` from :func:`coarse_biases`; ``weight`` ``(C, rows)``, ``q`` and
#: the used part of ``kv_fine`` (the token GEMM), and its ``bias`` (None without ``qkv_bias``);
#: ``pool_weight`` ``(C, rows)``, ``kv_coarse`` and the per-head gate rows (the pooled GEMM), and its
#: ``pool_bias``; ``proj_weight``, ``proj_bias``, the output projection; ``fc1_weight``, ``fc1_bias``,
#: ``fc2_weight``, ``fc2_bias``, the block's MLP (None: the block runs its ``mlp``).
Gathered = namedtuple('Gathered', ['fine_bias', 'coarse_bias', 'weight', 'bias', 'pool_weight', 'pool_bias',
                                   'proj_weight', 'proj_bias', 'fc1_weight', 'fc1_bias', 'fc2_weight', 'fc2_bias'],
                      defaults=(None,) * 12)


def gate_rows(layers: Sequence['DMMSA']) -> Tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]]:
    """Per layer and head, the gate as one logit ``z`` with ``1 + tanh(z)`` = the head group's weight.

    The gate's two logits ``l_f, l_c`` give ``2 * softmax(l)_g``, and with two groups
    ``2 * softmax(l)_f = 2 * sigmoid(l_f - l_c) = 1 + tanh((l_f - l_c) / 2)`` (the coarse group's
    with the sign flipped). So the gate becomes ``H`` more rows of the pooled GEMM, one per head,
    ``z_h = +-(w_f - w_c) x / 2``, and the per-head weight one ``tanh`` and one ``addcmul``.

    Returns:
        Per layer of ``layers`` (same heads), the ``(H + P, C)`` weights and ``(H + P,)`` biases, made with
        one matrix product for all of them; the last ``P`` rows are zero and pad the pooled GEMM's rows to
        a multiple of :data:`ALIGN` (:func:`pool_pad`).
    """
    signs = gate_signs(layers[0])  # H + P, 2: (1/2, -1/2) for fine heads, (-1/2, 1/2) for coarse ones, 0 padding
    c = layers[0].gate.weight.shape[1]
    biases = torch.stack([layer.gate.bias for layer in layers], 1)  # 2, m
    with torch.autocast(signs.device.type, enabled=False):  # in the weights' dtype: they are cast with the rest
        rows = (signs @ torch.cat([layer.gate.weight for layer in layers] + [biases], 1)).split(c, dim=1)  # H, m*C + m
    return rows[:len(layers)], rows[len(layers)].unbind(1)


def autocast_dtype(t: torch.Tensor) -> Optional[torch.dtype]:
    """The dtype autocast would cast ``t`` to for a matrix product here, or None (autocast off)."""
    kind = t.device.type
    if kind in ('cuda', 'cpu', 'xpu', 'mps') and torch.is_autocast_enabled(kind):
        return torch.get_autocast_dtype(kind)
    return None


def fused_weights(layers: Sequence['DMMSA'], mlps: Sequence[nn.Module] = (),
                  pack: Optional[bool] = None) -> List[Gathered]:
    """Per layer, the transposed weights and the biases of its GEMMs (:class:`Gathered`, biases of the
    relative positions left None), made for all ``layers`` with one ``cat`` and one transpose of the
    ``(rows, C)`` weights, one of the MLPs' ``fc2`` weights and one of the biases (not one transpose
    per ``nn.Linear``), and, under autocast, one cast each (not one per weight and bias):

    * the token GEMM: ``q`` and the fine keys/values (they read the same input), heads
      ``[q_f | q_c | k_f | v_f]``; at one token per unit ``[q_c | v_f]`` (the fine key is never used);
    * the pooled GEMM: ``kv_coarse`` and the per-head gate logits of :func:`gate_rows`;
    * with ``pack`` (None: under autocast, or off the CPU): the output projection ``proj``, and with
      ``mlps`` (one per layer, timm's ``Mlp``) ``fc1`` and ``fc2``; else their fields stay None and the
      layers run their own ``nn.Linear``.

    Packing them costs a copy of their weights per forward (and of their gradients in the backward)
    and saves a transpose per ``nn.Linear``, and under autocast a cast per weight and bias. On a GPU
    a copy is cheap and every op is a launch; under autocast each GEMM would copy its weight anyway.
    On a CPU in float32 the copies cost more than the views save (measured: DyViT-B's masked forward
    28% slower, forward+backward 13%), so there they are not packed.
    """
    pieces = [_qkv_pieces(layer) for layer in layers]
    gate_w, gate_b = gate_rows(layers)
    has_bias = pieces[0][2] is not None
    dtype = autocast_dtype(layers[0].proj.weight)
    outer = pack if pack is not None else (dtype is not None or layers[0].proj.weight.device.type != 'cpu')
    mlps = list(mlps) if outer else []
    weights, biases = [], []  # (layer, field, the tensors concatenated into it), in order
    for i, ((q, kv, qb, kvb), layer, gw, gb) in enumerate(zip(pieces, layers, gate_w, gate_b)):
        weights += [(i, 'weight', [q, kv]), (i, 'pool_weight', [layer.kv_coarse.weight, gw])]
        if has_bias:
            biases += [(i, 'bias', [qb, kvb]), (i, 'pool_bias', [layer.kv_coarse.bias, gb])]
        else:  # no bias on q and the key/value projections: the pooled bias is the gate's alone
            biases.append((i, 'pool_bias', [F.pad(gb, (pool_rows(layer) - gb.shape[0], 0))]))
        if outer:
            weights.append((i, 'proj_weight', [layer.proj.weight]))
            biases.append((i, 'proj_bias', [layer.proj.bias]))
        if mlps:
            weights.append((i, 'fc1_weight', [mlps[i].fc1.weight]))
            biases += [(i, 'fc1_bias', [mlps[i].fc1.bias]), (i, 'fc2_bias', [mlps[i].fc2.bias])]

    def pack(groups, transpose: bool) -> List[torch.Tensor]:
        """One cat (and cast) of all groups' tensors along dim 0, split back per group (transposed once)."""
        flat = torch.cat([t for _, _, ts in groups for t in ts])
        flat = flat.to(dtype) if dtype is not None else flat
        sizes = [sum(t.shape[0] for t in ts) for _, _, ts in groups]
        return list(flat.t().split(sizes, dim=1) if transpose else flat.split(sizes))

    fields: List[Dict[str, torch.Tensor]] = [{} for _ in layers]
    for (i, name, _), t in zip(weights + biases, pack(weights, True) + pack(biases, False)):
        fields[i][name] = t
    if mlps:  # fc2 weights (C, hidden): side by side along dim 1, then one transpose
        fc2 = torch.cat([m.fc2.weight for m in mlps], 1)
        fc2 = fc2.to(dtype) if dtype is not None else fc2
        for f, t in zip(fields, fc2.t().split(mlps[0].fc2.weight.shape[1])):
            f['fc2_weight'] = t
    return [Gathered(**f) for f in fields]


def fine_bias_index(unit_side: int, heads: int) -> torch.Tensor:
    """``(1, heads, T, T')`` flat indices into a ``(rows, heads)`` fine table (heads of several layers
    side by side), heads first, last stride 1 (4-D: CPU's fused kernel takes no 3-D mask), key rows padded
    to ``T'``, a multiple of :data:`ALIGN` (:func:`fine_biases` slices them off after the gather)."""
    rel = _pad_keys(coords_rel_index(unit_coords((unit_side, unit_side)), unit_side))
    return rel[None, None] * heads + torch.arange(heads).view(1, -1, 1, 1)



# ---------------------------------------------------------------- one layer
def pool_pad(layer: DMMSA) -> int:
    """Zero rows that pad the pooled GEMM's rows (coarse keys/values, one gate logit per head) to a
    multiple of :data:`ALIGN` (aligned keys and values)."""
    rows = 2 * layer.coarse_heads * layer.head_dim + layer.num_heads
    return padded(rows) - rows


def pool_rows(layer: DMMSA) -> int:
    """Rows of the pooled GEMM: ``kv_coarse``, the gate logits, the padding."""
    return 2 * layer.coarse_heads * layer.head_dim + layer.num_heads + pool_pad(layer)


def gate_signs(layer: DMMSA) -> torch.Tensor:
    """``(H + P, 2)``: the gate's two logits -> one logit per head (:func:`gate_rows`), zero padding rows."""
    hf, hc, pad = layer.fine_heads, layer.coarse_heads, pool_pad(layer)
    return _cached(('gate_signs', hf, hc, pad), layer.gate.weight.device, lambda: torch.tensor(
        [[0.5, -0.5]] * hf + [[-0.5, 0.5]] * hc + [[0.0, 0.0]] * pad, device=layer.gate.weight.device))


def fine_index(side: int, heads: int, device: torch.device) -> torch.Tensor:
    """:func:`fine_bias_index` on ``device``, cached."""
    return _cached(('fine_index', side, heads), device, lambda: fine_bias_index(side, heads).to(device))


def _qkv_pieces(layer: DMMSA) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """``q`` and the used part of ``kv_fine`` (at one token a unit, the value half): weights, then biases."""
    kv_w, kv_b = layer.kv_fine.weight, layer.kv_fine.bias
    if not layer.fine_attends:
        kv_w = kv_w[layer.fine_heads * layer.head_dim:]
        kv_b = None if kv_b is None else kv_b[layer.fine_heads * layer.head_dim:]
    return layer.q.weight, kv_w, layer.q.bias, kv_b


def attend(layer: DMMSA, x: torch.Tensor, plan: CoarsePlan, gathered: Optional[Gathered] = None) -> torch.Tensor:
    """``layer``'s DM-MSA on unit-major rows: what ``layer(x, coords, windows, shifted)`` computes.

    Args:
        layer: the attention whose weights run.
        x: ``(B*U*T, C)`` unit-major token rows.
        plan: the coarse grouping of these units, built for this stage's ``T`` and this layer's
            coarse heads (or, with ``gathered.coarse_bias``, for the heads of the layers sharing it).
        gathered: what the stage gathered for this layer (:func:`gather_stage`); what is None is
            gathered here.

    Returns:
        ``(B*U*T, C)``.
    """
    if gathered is None or gathered.weight is None:
        fused = fused_weights([layer])[0]
        gathered = fused if gathered is None else gathered._replace(**{k: v for k, v in fused._asdict().items()
                                                                         if v is not None})
    fine_bias, coarse_bias, w, bias, pool_w, pool_b = gathered[:6]
    b, u, t = plan.batch, plan.units, layer.tokens
    heads = layer.coarse_heads if coarse_bias is None else coarse_bias.shape[1]
    if plan.tokens != t or (coarse_bias is None and plan.heads != layer.coarse_heads) or heads != layer.coarse_heads:
        raise ValueError(f'DMMSA: plan built for T={plan.tokens}, {plan.heads} coarse heads (bias for {heads}); '
                         f'this layer has T={t}, {layer.coarse_heads}')
    n, c = b * u, x.shape[-1]
    hf, hc, d = layer.fine_heads, layer.coarse_heads, layer.head_dim
    drop = layer.attn_drop if layer.training else 0.0
    x = x.to(w.dtype)  # under autocast: one cast for both GEMMs (the pooled rows are averaged in it)
    pooled = x.view(n, t, c).mean(1) if t > 1 else x  # B*U, C
    # one GEMM on the pooled rows: the coarse keys/values and one gate logit per head
    kv, gate, _ = torch.addmm(pool_b, pooled, pool_w).split([2 * hc * d, layer.num_heads, pool_pad(layer)], dim=1)
    qkv = torch.addmm(bias, x, w) if bias is not None else torch.mm(x, w)  # heads [q_f | q_c | k_f | v_f]
    if layer.fine_attends:
        q_f, q_c, k_f, v_f = qkv.view(n, t, -1, d).transpose(1, 2).split([hf, hc, hf, hf], dim=1)  # B*U, h, T, d
        if fine_bias is None:
            fine_bias = fine_biases([layer.fine_bias_table], fine_index(layer.unit_side, hf, x.device), hf,
                                    q_f.dtype)[0]  # 1, hf, T, T
        o_fine = F.scaled_dot_product_attention(q_f, k_f, v_f, attn_mask=fine_bias.to(q_f.dtype), dropout_p=drop)
        o_fine = o_fine.transpose(1, 2)  # B*U, T, hf, d
    else:  # one token per unit: the fine output is the value, and no fine key is computed
        q_c, o_fine = qkv.view(n, 1, -1, d).split([hc, hf], dim=2)
        q_c = q_c.transpose(1, 2)  # B*U, hc, 1, d
    if coarse_bias is None:
        coarse_bias = coarse_biases([layer.coarse_bias_table], plan, q_c.dtype)[0]
    o_coarse = _coarse(q_c, kv, plan, coarse_bias.to(q_c.dtype), drop)  # B*U, T, hc, d
    out = torch.cat([o_fine, o_coarse], dim=2)  # B*U, T, H, d
    out = torch.addcmul(out, out, gate.tanh().view(n, 1, -1, 1))  # each head times 1 + tanh(z_h)
    out = out.view(n * t, c)
    if gathered.proj_weight is None:
        out = layer.proj(out)
    else:
        out = torch.addmm(gathered.proj_bias, out, gathered.proj_weight)
    return layer.proj_drop(out)


def _coarse(q: torch.Tensor, kv: torch.Tensor, plan: CoarsePlan, bias: torch.Tensor, drop: float) -> torch.Tensor:
    """Coarse attention: every token attends to the pooled units of its window.

    Args:
        q: ``(B*U, hc, T, d)`` queries.
        kv: ``(B*U, 2*hc*d)`` pooled keys and values.
        plan: the grouping.
        bias: ``(G or 1, hc, L*T, L)`` from :func:`coarse_biases`.
        drop: attention dropout.

    Returns:
        ``(B*U, T, hc, d)``.
    """
    b, u = plan.batch, plan.units
    n, hc, t, d = q.shape
    if plan.index is None:  # the groups are the samples: queries are the U*T tokens of a sample
        q = q.view(b, u, hc, t, d).transpose(1, 2).reshape(b, hc, u * t, d)
        k, v = kv.view(b, u, 2, hc, d).permute(2, 0, 3, 1, 4).unbind(0)  # B, hc, U, d
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=drop)
        # fused kernels return (B, U*T, hc, d) memory transposed, so this is a view
        return out.transpose(1, 2).reshape(n, t, hc, d)
    g, length = plan.index.shape
    q = q[plan.index].permute(0, 2, 1, 3, 4).reshape(g, hc, length * t, d)  # G, hc, L*T, d
    k, v = kv.view(n, 2, hc, d)[plan.index].permute(2, 0, 3, 1, 4).unbind(0)  # G, hc, L, d
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=drop)
    out = out.view(g, hc, length, t, d).permute(0, 2, 3, 1, 4).reshape(g * length, t, hc, d)
    return out[plan.inverse]  # each unit back from its slot


# ---------------------------------------------------------------- blocks and stages of DyViT
#: Pack the output projections and MLPs with the attention weights (:func:`fused_weights`'s ``pack``):
#: None (auto: under autocast or off the CPU), or True / False to force it (tests, benchmarks).
PACK_WEIGHTS: Optional[bool] = None


def plan_heads(depth: int, coarse_heads: int, shared: bool) -> Tuple[int, int]:
    """Heads the (unshifted, shifted) coarse plans of a stage are built for: those of the blocks that
    use each (all of them when one plan serves both, ``shared``)."""
    if shared:
        return depth * coarse_heads, depth * coarse_heads
    return (depth + 1) // 2 * coarse_heads, max(1, depth // 2) * coarse_heads


def stage_plans(make: Callable[[bool, int, int], CoarsePlan], windows: CoarseWindows,
                stages: Sequence[nn.Module]) -> List[Tuple[CoarsePlan, CoarsePlan]]:
    """The (unshifted, shifted) coarse plans of ``stages`` (DyViT stages); ``make(shifted, tokens, heads)``
    builds one. Where the grid fits one window one plan serves every block of a stage."""
    shared = windows.shifts == (False,)
    plans = []
    for stage in stages:
        attn = stage.blocks[0].attn
        heads = plan_heads(len(stage.blocks), attn.coarse_heads, shared)
        unshifted = make(False, attn.tokens, heads[0])
        plans.append((unshifted, unshifted) if shared else (unshifted, make(True, attn.tokens, heads[1])))
    return plans


def gather_stage(stage: nn.Module, plans: Tuple[CoarsePlan, CoarsePlan]) -> List[Gathered]:
    """Per block of ``stage``, its relative-position biases and the transposed weights of its GEMMs,
    with one ``take`` per table kind and plan and one ``cat`` (not six small ops per block); under
    autocast cast once per stage to the autocast dtype, as the attention and the GEMMs would cast them,
    the biases after their float32 gather, so that the tables' gradients accumulate in float32."""
    attns = [blk.attn for blk in stage.blocks]
    first = attns[0]
    dtype = autocast_dtype(first.proj.weight)
    fine: List[Optional[torch.Tensor]] = [None] * len(attns)
    if first.fine_attends and len(attns) > 1:
        index = fine_index(first.unit_side, len(attns) * first.fine_heads, first.proj.weight.device)
        fine = fine_biases([a.fine_bias_table for a in attns], index, first.fine_heads, dtype)
    coarse: List[Optional[torch.Tensor]] = [None] * len(attns)
    shared = plans[0] is plans[1]
    for shifted, plan in enumerate(plans[:1] if shared else plans):
        members = [i for i, blk in enumerate(stage.blocks) if shared or int(blk.shifted) == shifted]
        if members:
            for i, bias in zip(members, coarse_biases([attns[i].coarse_bias_table for i in members], plan, dtype)):
                coarse[i] = bias
    weights = fused_weights(attns, [blk.mlp for blk in stage.blocks], PACK_WEIGHTS)
    return [g._replace(fine_bias=f, coarse_bias=c) for f, c, g in zip(fine, coarse, weights)]


def run_block(blk: nn.Module, x: torch.Tensor, plan: CoarsePlan, gathered: Optional[Gathered] = None) -> torch.Tensor:
    """A DyViT block on unit-major rows ``(B*U*T, C)``: what ``blk(x, coords, windows, shifted)`` computes."""
    x = x + _drop(blk, attend(blk.attn, blk.norm1(x), plan, gathered), plan.batch)
    if gathered is None or gathered.fc1_weight is None:
        return x + _drop(blk, blk.mlp(blk.norm2(x)), plan.batch)
    # the MLP with the stage's transposed weights (timm's Mlp without its zero dropouts)
    h = blk.mlp.act(torch.addmm(gathered.fc1_bias, blk.norm2(x), gathered.fc1_weight))
    return x + _drop(blk, torch.addmm(gathered.fc2_bias, h, gathered.fc2_weight), plan.batch)


def _drop(blk: nn.Module, y: torch.Tensor, batch: int) -> torch.Tensor:
    """The block's drop path, per sample (rows are grouped by sample first)."""
    if isinstance(blk.drop_path, nn.Identity) or not blk.training:
        return y
    return blk.drop_path(y.view(batch, -1, y.shape[-1])).view(y.shape)


def run_stage(stage: nn.Module, x: torch.Tensor,
              plans: Tuple[CoarsePlan, CoarsePlan]) -> Tuple[torch.Tensor, torch.Tensor]:
    """A DyViT stage on unit-major rows: its output (before merging) and the input of the next stage.

    Args:
        stage: the stage.
        x: ``(B*U*T, C)`` rows.
        plans: the coarse plans of this stage, unshifted and shifted (the same object when the grid
            fits one window), from :func:`stage_plans`.
    """
    for blk, gathered in zip(stage.blocks, gather_stage(stage, plans)):
        plan = plans[int(blk.shifted)]
        if stage.with_cp and x.requires_grad:
            x = cp.checkpoint(run_block, blk, x, plan, gathered, use_reentrant=False)
        else:
            x = run_block(blk, x, plan, gathered)
    return x, (stage.downsample(x) if stage.downsample is not None else x)
