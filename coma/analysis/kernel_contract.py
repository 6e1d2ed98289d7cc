"""The input contract of the fused CUDA attention kernels, checked on any device.

PyTorch's CUDA ``scaled_dot_product_attention`` picks a fused kernel (flash, memory-efficient or
cuDNN) and, when training the biases, the memory-efficient one, whose launcher raises "key is not
correctly aligned" unless q, k and v are aligned; an attention mask that is not aligned is padded
and copied on every call. CPU kernels accept any layout, so a CPU run cannot show either. This
module states the rules once, in :func:`sdpa_violations`, and records every call of a forward and
backward with :func:`record_sdpa_calls`, so that tests on a CPU check what a GPU will enforce:

* q, k and v: 4-D ``(B, H, L, d)``, one dtype, last stride 1, every other stride of a dimension
  longer than 1 and the storage offset a multiple of 16 bytes, head dim ``d`` a multiple of 8;
* the mask: None, or bool or q's dtype, 4-D and broadcastable as ``(1|B, 1|H, Lq, Lk)``, last stride 1
  and every other stride a multiple of 8 elements (PyTorch's condition for using it without a copy).
"""
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

import torch
import torch.nn.functional as F

#: byte alignment of q, k and v strides and offsets (the kernels' 128-bit loads)
QKV_ALIGN_BYTES = 16
#: element alignment of the mask's strides (PyTorch pads and copies a mask that misses it)
MASK_ALIGN_ELEMENTS = 8
#: head dims the memory-efficient kernel takes in half precision (smaller multiples fall back to math)
HEAD_DIM_MULTIPLE = 8


def _layout(t: torch.Tensor) -> str:
    return f'shape {tuple(t.shape)} stride {t.stride()} offset {t.storage_offset()} {t.dtype}'


def sdpa_violations(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    attn_mask: Optional[torch.Tensor] = None) -> List[str]:
    """Every rule of the fused kernels' contract that these inputs break.

    Args:
        q: ``(B, H, Lq, d)`` queries.
        k: ``(B, H, Lk, d)`` keys.
        v: ``(B, H, Lk, dv)`` values.
        attn_mask: None, or a mask broadcastable to ``(B, H, Lq, Lk)``.

    Returns:
        One sentence per broken rule (empty: the inputs meet the contract).
    """
    out: List[str] = []
    for name, t in (('query', q), ('key', k), ('value', v)):
        size = t.element_size()
        if t.dim() != 4:
            out.append(f'{name} is {t.dim()}-D, not (B, H, L, d): {_layout(t)}')
            continue
        if t.dtype != q.dtype:
            out.append(f'{name} dtype {t.dtype} differs from the query\'s {q.dtype}')
        if t.stride(-1) != 1:
            out.append(f'{name} last stride {t.stride(-1)} != 1: {_layout(t)}')
        for dim, label in zip(range(3), ('strideB', 'strideH', 'strideM')):
            if t.shape[dim] > 1 and (t.stride(dim) * size) % QKV_ALIGN_BYTES:
                out.append(f'{name} is not aligned ({label} = {t.stride(dim)} elements): {_layout(t)}')
        if (t.storage_offset() * size) % QKV_ALIGN_BYTES:
            out.append(f'{name} storage offset {t.storage_offset()} is not 16-byte aligned: {_layout(t)}')
        if t.shape[-1] % HEAD_DIM_MULTIPLE:
            out.append(f'{name} head dim {t.shape[-1]} is not a multiple of {HEAD_DIM_MULTIPLE}')
    if attn_mask is None or q.dim() != 4 or k.dim() != 4:
        return out
    m = attn_mask
    if m.dtype not in (torch.bool, q.dtype):
        out.append(f'mask dtype {m.dtype} is neither bool nor the query\'s {q.dtype}')
    if m.dim() != 4:
        out.append(f'mask is {m.dim()}-D, not (1|B, 1|H, Lq, Lk): {_layout(m)}')
        return out
    want = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    if any(s not in (1, w) for s, w in zip(m.shape[:2], want[:2])) or tuple(m.shape[2:]) != want[2:]:
        out.append(f'mask shape {tuple(m.shape)} does not broadcast as (1|B, 1|H, Lq, Lk) = {want}')
    if m.stride(-1) != 1:
        out.append(f'mask last stride {m.stride(-1)} != 1: {_layout(m)}')
    bad = [s for s in m.stride()[:-1] if s % MASK_ALIGN_ELEMENTS]
    if bad:
        out.append(f'mask strides {bad} are not multiples of {MASK_ALIGN_ELEMENTS} elements (PyTorch pads and '
                   f'copies it at every call): {_layout(m)}')
    return out


@contextmanager
def record_sdpa_calls() -> Iterator[List[Dict]]:
    """Records every ``torch.nn.functional.scaled_dot_product_attention`` call made inside the block.

    Yields:
        A list that fills with one dict per call: ``shapes`` (q, k, v, mask), ``dtype``, ``grad``
        (whether autograd records the call) and ``violations`` (:func:`sdpa_violations`).
    """
    calls: List[Dict] = []
    original = F.scaled_dot_product_attention

    def wrapped(query, key, value, attn_mask=None, *args, **kwargs):
        calls.append(dict(shapes=[tuple(t.shape) for t in (query, key, value)] +
                          ([tuple(attn_mask.shape)] if attn_mask is not None else []),
                          dtype=query.dtype, grad=torch.is_grad_enabled() and query.requires_grad,
                          violations=sdpa_violations(query, key, value, attn_mask)))
        return original(query, key, value, attn_mask, *args, **kwargs)

    F.scaled_dot_product_attention = wrapped
    try:
        yield calls
    finally:
        F.scaled_dot_product_attention = original
