"""What the fused CUDA attention kernels demand of their inputs, checked on the CPU.

Every ``scaled_dot_product_attention`` call of DyViT-T and DyViT-B, dense (one coarse window and
several shifted ones) and masked, in training (grad on, forward and backward) and in eval, in float32
and under bfloat16 and float16 autocast, must meet the contract of
:mod:`coma.analysis.kernel_contract`; so must a whole CoMA training step (decoder included).
"""
import pytest
import torch

from coma.analysis.kernel_contract import record_sdpa_calls, sdpa_violations
from coma.models import CoMA, DyViT
from test_dyvit import _mask  # noqa: E402  (tests/models is on sys.path under pytest)

DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


@pytest.fixture(scope='module')
def models():
    return {arch: DyViT(arch) for arch in ('tiny', 'base')}


def _first_failure(calls):
    bad = [c for c in calls if c['violations']]
    if not bad:
        return ''
    return (f"{len(bad)} of {len(calls)} calls break the contract; first: shapes {bad[0]['shapes']} "
            f"{bad[0]['dtype']}: {bad[0]['violations']}")


#: every arch, mode, training or eval and dtype; but DyViT-B trains under float16 in the CoMA step's test
#: only (the layouts under float16 are bfloat16's, the same code path with 2-byte elements; DyViT-T and
#: DyViT-B in eval run both): the three heaviest cases of the matrix
CASES = [(arch, training, mode, dtype) for arch in ('tiny', 'base') for training in (True, False)
         for mode in ('dense', 'dense windows', 'masked') for dtype in DTYPES
         if not (arch == 'base' and training and dtype == 'fp16')]


@pytest.mark.parametrize('arch, training, mode, dtype', CASES,
                         ids=['-'.join([a, 'train' if t else 'eval', m, d]) for a, t, m, d in CASES])
def test_every_attention_call_meets_the_fused_kernel_contract(models, arch, training, mode, dtype):
    model = models[arch].train(training)
    size = (256, 256) if mode == 'dense windows' else (224, 224)  # 8x8 units: shifted, padded 7x7 windows
    x = torch.randn(2, 3, *size)
    cast = DTYPES[dtype]
    with torch.set_grad_enabled(training), record_sdpa_calls() as calls, \
            torch.autocast('cpu', dtype=cast or torch.bfloat16, enabled=cast is not None):
        if mode == 'masked':
            out = model.forward_masked(x, _mask(2, (7, 7), keep=20), 20).float().square().mean()
        else:
            out = sum(o.float().square().mean() for o in model(x))
        if training:
            out.backward()
    model.zero_grad(set_to_none=True)
    depths = model.arch['depths']
    fine_attending = sum(depths[:3])  # the last stage holds one token per unit: no fine attention
    assert len(calls) == fine_attending + sum(depths), [c['shapes'] for c in calls]
    assert all(c['grad'] == training for c in calls)
    if cast is not None:
        assert all(c['dtype'] == cast for c in calls), {c['dtype'] for c in calls}
    assert not _first_failure(calls), _first_failure(calls)


@pytest.mark.parametrize('dtype', ['bf16', 'fp16'])
def test_a_coma_training_step_meets_the_fused_kernel_contract(dtype):
    """Encoder, frozen encoder and both decoders of a CoMA step (DyViT-T, 224 px) under autocast."""
    model = CoMA(backbone=dict(type='DyViT', arch='tiny', out_indices=(3,)),
                 decoder=dict(type='CoMADecoder', embed_dim=128, depth=2, num_heads=4)).train()
    model.eval_interval = 1
    with record_sdpa_calls() as calls, torch.autocast('cpu', dtype=DTYPES[dtype]):
        losses = model.loss(torch.randn(2, 3, 224, 224))
        sum(v for k, v in losses.items() if k != 'loss_eval').backward()
    assert len(calls) == 2 * (14 + 16 + 2)  # M_t and M_{t-1}: encoder (14 fine + 16 coarse), decoder (2)
    assert not _first_failure(calls), _first_failure(calls)


def test_the_contract_rejects_what_the_kernels_reject():
    """The checker itself: each rule caught on its own breakage, and aligned inputs accepted."""
    q = torch.randn(2, 3, 64, 32, dtype=torch.bfloat16)
    mask = torch.zeros(1, 3, 64, 64, dtype=torch.bfloat16)
    assert sdpa_violations(q, q, q, mask) == []
    rows = torch.randn(2 * 49, 131, dtype=torch.bfloat16)  # a pooled GEMM output with 131-element rows
    k = rows[:, :64].view(2, 49, 2, 32).transpose(1, 2)
    assert any('strideM' in v for v in sdpa_violations(q, k, k))
    shifted = torch.randn(q.numel() + 1, dtype=torch.bfloat16)[1:].view(q.shape)
    assert any('offset' in v for v in sdpa_violations(shifted, q, q))
    assert any('head dim' in v for v in sdpa_violations(q[..., :20], q[..., :20], q[..., :20]))
    assert any('last stride' in v for v in sdpa_violations(q.transpose(2, 3), q, q))
    unpadded = torch.zeros(1, 3, 64, 49, dtype=torch.bfloat16)  # rows of 49: PyTorch pads and copies it
    assert any('multiples of 8' in v for v in sdpa_violations(q, q[:, :, :49], q[:, :, :49], unpadded))
    assert any('dtype' in v for v in sdpa_violations(q, q, q, mask.float()))
    assert any('broadcast' in v for v in sdpa_violations(q, q, q, mask[:, :, :32]))


@pytest.mark.parametrize('mode', ['dense', 'masked'])
def test_bias_tables_are_gathered_in_float32_under_autocast(models, mode):
    """The relative-position tables are read by ``take`` in float32 and cast after it, so the backward of
    the gather (a scatter-add of many pairs into few table rows) accumulates in float32, not bf16."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Takes(TorchDispatchMode):
        dtypes = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func._overloadpacket.__name__ in ('take', 'index_put', 'index_put_', 'put', 'put_',
                                                 'embedding_dense_backward', 'index_add', 'index_add_'):
                self.dtypes.append((func._overloadpacket.__name__, args[0].dtype))
            return func(*args, **(kwargs or {}))

    model = models['tiny'].train()
    x, mask = torch.randn(2, 3, 224, 224), _mask(2, (7, 7), keep=20)
    with Takes() as mode_, torch.autocast('cpu', dtype=torch.bfloat16):
        out = model.forward_masked(x, mask, 20) if mode == 'masked' else model(x)[-1]
        out.float().square().mean().backward()
    model.zero_grad(set_to_none=True)
    takes = [dtype for name, dtype in mode_.dtypes if name == 'take']
    scatters = [dtype for name, dtype in mode_.dtypes if name != 'take']  # the gathers' backward
    assert len(takes) == 7 and len(scatters) >= 7  # per stage one fine (stages 1-3) and one coarse gather
    assert set(takes) == set(scatters) == {torch.float32}, mode_.dtypes
