"""The fast paths. Deterministic proxies only (op counts, whole-graph compilation,
equality with eager), never timings: speed is measured by tools/benchmark_*.py."""
import copy

import pytest
import torch
from mmengine.optim import OptimWrapper

from coma.analysis import count_aten_ops
from coma.models import CoMA, CoMADecoder, DyViT
from coma.models.backbones.dyvit import DyViTStage
from coma.models.layers import dm_msa_fast as fast
from coma.models.layers.dm_msa import DMMSA, CoarseWindows, unit_coords
from test_dyvit import _mask  # noqa: E402  (tests/models is on sys.path under pytest)

#: ATen ops of one DyViT-B forward at batch 2, 224x224 (torch 2.14.1), as a GPU runs it (each stage packs
#: its blocks' proj/fc1/fc2 weights with its q/kv weights: one cat and one transpose per stage, not one
#: ``t`` per ``nn.Linear``), Hiera-B's count (875-877 with views, 373-374 kernels; ViT-B/16 332-334 and
#: 124-125). Measured: dense 899 (440 computing), masked 898 (441); without the packing, as a CPU runs
#: float32 (there the copies cost more than the views save), 959 (436) and 958 (437). Under bf16 autocast
#: the casts of AUTOCAST_CASTS come on top (919 and 918). The attention biases are gathered with their key
#: rows padded to a multiple of 8 and sliced (one view per gather: the fused CUDA kernels' alignment,
#: tests/models/test_kernel_contract.py). A DyViT block has two attentions, a gate and a pooling (32 ops,
#: 16 of them computing). The coarse bias is gathered per unit pair and then expanded over a unit's
#: tokens: gathering it per token pair made the backward scatter L*T*L values into the small table.
OP_BUDGET = 900
KERNEL_OP_BUDGET = 441
OP_BUDGET_CPU = 960  # the same forward as the CPU runs it in float32 (no packing)
#: Casts (``aten._to_copy``) of the same forward under bf16 autocast: the input, and per stage its
#: fine and coarse bias tables, its packed weights, biases and fc2 weights, once each (19), plus the
#: mask's sort key in the masked forward. 207 and 208 when every GEMM cast its own weight and bias.
AUTOCAST_CASTS = {'dense': 20, 'masked': 21}


@pytest.fixture(scope='module')
def dyvit_base():
    return DyViT('base').eval()


@pytest.mark.parametrize('mode', ['dense', 'masked'])
@pytest.mark.parametrize('pack', [True, None])
def test_dyvit_base_op_budget(dyvit_base, mode, pack, monkeypatch):
    """One forward of DyViT-B at batch 2, 224x224 dispatches at most OP_BUDGET ATen ops as a GPU runs it
    (packed weights), and at most OP_BUDGET_CPU as the CPU runs it (auto: not packed in float32)."""
    monkeypatch.setattr(fast, 'PACK_WEIGHTS', pack)
    x = torch.randn(2, 3, 224, 224)
    mask = _mask(2, (7, 7), keep=20)
    call = (lambda: dyvit_base(x)) if mode == 'dense' else (lambda: dyvit_base.forward_masked(x, mask, 20))
    with torch.no_grad():
        call()  # dense plans are cached after the first call of a size, as in training
        total, kernels, per_op = count_aten_ops(call)
    budget = OP_BUDGET if pack else OP_BUDGET_CPU
    assert total <= budget, f'{mode}: {total} ATen ops > {budget}; most frequent: {per_op.most_common(8)}'
    assert kernels <= KERNEL_OP_BUDGET, f'{mode}: {kernels} computing ATen ops > {KERNEL_OP_BUDGET}'
    assert per_op['aten.t'] == (11 if pack else 79)  # 3 merges; per stage 2 packs, or 1 and 3 Linears per block
    assert per_op['aten._scaled_dot_product_flash_attention_for_cpu'] == 46  # no math fallback: 22 fine + 24 coarse


@pytest.mark.parametrize('mode', ['dense', 'masked'])
def test_dyvit_base_casts_once_per_stage_under_autocast(dyvit_base, mode):
    """Under bf16 autocast (how pre-training runs on a GPU) each stage casts its packed weights, biases
    and bias tables once, not each GEMM its own weight and bias: few cast kernels."""
    x = torch.randn(2, 3, 224, 224)
    mask = _mask(2, (7, 7), keep=20)
    call = (lambda: dyvit_base(x)) if mode == 'dense' else (lambda: dyvit_base.forward_masked(x, mask, 20))
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        call()
        total, kernels, per_op = count_aten_ops(call)
    assert per_op['aten._to_copy'] == AUTOCAST_CASTS[mode], per_op.most_common(12)
    assert kernels <= KERNEL_OP_BUDGET + AUTOCAST_CASTS[mode]


@pytest.mark.parametrize('case', ['one window', 'shifted windows', 'masked, shifted windows'])
@pytest.mark.parametrize('with_cp', [False, True])
def test_fast_stage_equals_the_plain_stage(case, with_cp):
    """The executor runs a stage with the biases of all its blocks gathered at once (one ``take`` per
    table kind and plan), with and without packing the other weights: outputs and gradients equal the
    plain modules' (1e-5), and those of blocks that gather their own."""
    torch.manual_seed(0)
    depth, hc, t, window, b = 3, 2, 4, 2, 2  # odd depth: 2 unshifted blocks, 1 shifted
    stage = DyViTStage(16, depth, 4, 2, unit_side=2, coarse_window=window, mlp_ratio=2.0, drop_paths=[0.0] * depth,
                       downsample=False, with_cp=with_cp)
    with torch.no_grad():
        for p in stage.parameters():
            p.normal_(0, 0.3)
    grid = (2, 2) if case == 'one window' else (5, 4)
    shared = max(grid) <= window
    if case.startswith('masked'):
        ids = torch.stack([torch.randperm(20)[:9].sort().values for _ in range(b)])
        rels = {s: fast.masked_rel_index(ids, grid, window, s) for s in (False, True)}
        make = lambda shifted, heads: fast.plan_for_stage(*rels[shifted], t, heads)  # noqa: E731
        units = ids.shape[1]
        coords = torch.stack([ids // grid[1], ids % grid[1]], -1)
    else:
        cpu = torch.device('cpu')
        make = lambda shifted, heads: fast.dense_plan(b, grid, window, shifted, cpu, t, heads)  # noqa: E731
        units = grid[0] * grid[1]
        coords = unit_coords(grid).expand(b, -1, -1)
    heads = fast.plan_heads(depth, hc, shared)
    plans = (make(False, heads[0]),) * 2 if shared else (make(False, heads[0]), make(True, heads[1]))
    own = [make(blk.shifted and not shared, hc) for blk in stage.blocks]  # each block's own plan
    x = torch.randn(b * units * t, 16)
    xa, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = fast.run_stage(stage, xa, plans)[0]
    weight = torch.randn_like(out)
    (out * weight).sum().backward()
    grads = {n: p.grad.clone() for n, p in stage.named_parameters()}
    stage.zero_grad()
    ref = stage(xr.view(b, units, t, 16), coords, CoarseWindows(grid, window))[0].reshape(-1, 16)  # the plain modules
    (ref * weight).sum().backward()
    own_out = x
    with torch.no_grad():
        for blk, plan in zip(stage.blocks, own):
            own_out = fast.run_block(blk, own_out, plan)
    torch.testing.assert_close(own_out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    # float32 on CPU: proj and the MLP run their own nn.Linear
    assert fast.gather_stage(stage, plans)[0].fc2_weight is None
    fast.PACK_WEIGHTS = True  # as on a GPU: packed with the rest, the same outputs and gradients
    assert fast.gather_stage(stage, plans)[0].fc2_weight is not None
    stage.zero_grad()
    xp = x.clone().requires_grad_()
    try:
        packed = fast.run_stage(stage, xp, plans)[0]
    finally:
        fast.PACK_WEIGHTS = None
    (packed * weight).sum().backward()
    torch.testing.assert_close(packed, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(xp.grad, xr.grad, atol=1e-5, rtol=1e-5)
    for n, p in stage.named_parameters():
        torch.testing.assert_close(grads[n], p.grad, atol=1e-5, rtol=1e-5, msg=n)
    torch.testing.assert_close(xa.grad, xr.grad, atol=1e-5, rtol=1e-5)
    for n, p in stage.named_parameters():
        torch.testing.assert_close(grads[n], p.grad, atol=1e-5, rtol=1e-5, msg=n)
    assert all(g.abs().sum() > 0 for n, g in grads.items() if 'bias_table' in n)


def test_stage_under_autocast_casts_once_and_equals_the_plain_stage():
    """Under bf16 autocast the stage's packed, once-cast weights give what the plain modules give
    (each ``nn.Linear`` casting its weight), and the gradients reach the fp32 parameters."""
    torch.manual_seed(0)
    stage = DyViTStage(16, 2, 4, 2, unit_side=2, coarse_window=7, mlp_ratio=2.0, drop_paths=[0.0] * 2,
                       downsample=False, with_cp=False)
    plan = fast.dense_plan(2, (2, 3), 7, False, torch.device('cpu'), 4, 4)
    x = torch.randn(2 * 6 * 4, 16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = fast.run_stage(stage, x, (plan, plan))[0]
        ref = stage(x.view(2, 6, 4, 16), unit_coords((2, 3)).expand(2, -1, -1), CoarseWindows((2, 3), 7))[0]
        ref = ref.reshape(-1, 16)
    torch.testing.assert_close(out, ref, atol=2e-2, rtol=2e-2)
    out.float().square().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in stage.parameters())


@pytest.mark.parametrize('side', [1, 2])
def test_dmmsa_without_qkv_bias_equals_zero_biases(side):
    """``qkv_bias=False`` (the token GEMM without bias, the pooled GEMM with the gate's bias alone)
    gives what the biased layer gives with its q/k/v biases at zero."""
    torch.manual_seed(0)
    biased = DMMSA(16, 4, 2, unit_side=side, coarse_window=7)
    plain = DMMSA(16, 4, 2, unit_side=side, coarse_window=7, qkv_bias=False)
    params = dict(biased.named_parameters())
    with torch.no_grad():
        for name, p in params.items():
            p.normal_(0, 0.3) if name in dict(plain.named_parameters()) else p.zero_()
        for name, p in plain.named_parameters():
            p.copy_(params[name])
    assert plain.q.bias is None and plain.kv_coarse.bias is None
    plan = fast.dense_plan(2, (2, 3), 7, False, torch.device('cpu'), side * side, 2)
    x = torch.randn(2 * 6 * side * side, 16)
    torch.testing.assert_close(fast.attend(plain, x, plan), fast.attend(biased, x, plan), atol=1e-6, rtol=1e-6)
    coords, windows = unit_coords((2, 3)).expand(2, -1, -1), CoarseWindows((2, 3), 7)
    torch.testing.assert_close(fast.attend(plain, x, plan).view(2, 6, side * side, 16),
                               plain(x.view(2, 6, side * side, 16), coords, windows, False), atol=1e-5, rtol=1e-5)


def test_op_counter_counts():
    total, kernels, per_op = count_aten_ops(lambda: torch.ones(3).add(1).mul(2).view(3, 1))
    assert per_op['aten.add'] == 1 and per_op['aten.mul'] == 1 and per_op['aten.view'] == 1
    assert total == sum(per_op.values()) >= 4
    assert kernels == total - 1  # the view computes nothing


# ---------------------------------------------------------------- whole-graph compilation
# fullgraph=True fails on any graph break (a host sync such as .item() or int(tensor), a
# data-dependent shape, an untraceable call). 'aot_eager' traces forward and backward through
# AOTAutograd without code generation (seconds); one test runs inductor on a small model.
TINY = dict(embed_dim=16, depths=(1, 1, 1, 1), num_heads=(2, 2, 4, 8), fine_heads=(1, 1, 2, 4))


def _compile(fn, backend='aot_eager'):
    torch._dynamo.reset()
    return torch.compile(fn, fullgraph=True, dynamic=False, backend=backend)


def test_dense_forward_compiles_as_one_graph():
    torch.manual_seed(0)
    m = DyViT('nano').eval()
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        eager = m(x)
        compiled = _compile(m.forward)(x)
    for a, b in zip(compiled, eager):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_masked_forward_and_decoder_compile_as_one_graph_with_gradients():
    torch.manual_seed(0)
    m = DyViT('nano')
    dec = CoMADecoder(in_dim=m.unit_dim, unit=32, embed_dim=64, depth=2, num_heads=4)
    x = torch.randn(2, 3, 128, 128)
    mask = _mask(2, (4, 4), keep=6)
    eager = dec(m.forward_masked(x, mask, 6), mask)
    eager.square().mean().backward()
    ref = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    m.zero_grad()
    compiled = _compile(dec.forward)(_compile(m.forward_masked)(x, mask, 6), mask)
    compiled.square().mean().backward()
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)
    for n, g in ref.items():
        torch.testing.assert_close(dict(m.named_parameters())[n].grad, g, atol=1e-5, rtol=1e-4, msg=n)


def test_forwards_compile_as_one_graph_under_autocast_with_packed_weights():
    """How a GPU pre-trains (bf16 autocast, weights packed and cast once per stage): the masked forward
    with its backward, and the dense forward, still compile as one graph and equal eager."""
    torch.manual_seed(0)
    m = DyViT('nano')
    x = torch.randn(2, 3, 128, 160)
    mask = _mask(2, (4, 5), keep=8)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        plans = fast.stage_plans(lambda s, t, h: fast.dense_plan(2, (4, 5), 7, s, x.device, t, h),
                                 CoarseWindows((4, 5), 7), m.stages[:1])
        assert fast.gather_stage(m.stages[0], plans[0])[0].fc2_weight.dtype == torch.bfloat16
        eager = m.forward_masked(x, mask, 8)
        eager.float().square().mean().backward()
        ref = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
        m.zero_grad()
        compiled = _compile(m.forward_masked)(x, mask, 8)
        compiled.float().square().mean().backward()
        with torch.no_grad():
            dense, dense_compiled = m(x)[-1], _compile(m.forward)(x)[-1]
    torch.testing.assert_close(compiled, eager)
    torch.testing.assert_close(dense_compiled, dense)
    for n, g in ref.items():
        torch.testing.assert_close(dict(m.named_parameters())[n].grad, g, msg=n)


def test_inductor_compiled_forwards_equal_eager():
    """Code generation too (inductor on CPU), on a small DyViT and decoder to keep the compile short."""
    torch.manual_seed(0)
    m = DyViT(TINY).eval()
    dec = CoMADecoder(in_dim=m.unit_dim, unit=32, embed_dim=32, depth=1, num_heads=2).eval()
    x = torch.randn(2, 3, 64, 96)
    mask = _mask(2, (2, 3), keep=2)

    def both(x, mask):
        return dec(m.forward_masked(x, mask, 2), mask), m(x)
    with torch.no_grad():
        (dec_c, dense_c), (dec_e, dense_e) = _compile(both, 'inductor')(x, mask), both(x, mask)
    torch.testing.assert_close(dec_c, dec_e, atol=1e-4, rtol=1e-4)
    for a, b in zip(dense_c, dense_e):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_masked_forward_over_several_windows_compiles_as_one_graph():
    """Grids larger than a coarse window (shifted windows, masked pairs) trace without a break too."""
    torch.manual_seed(0)
    m = DyViT('nano', coarse_window=2).eval()
    x = torch.randn(1, 3, 160, 96)
    mask = _mask(1, (5, 3), keep=7)
    with torch.no_grad():
        eager = m.forward_masked(x, mask, 7)
        compiled = _compile(m.forward_masked)(x, mask, 7)
        dense = _compile(m.forward)(x)
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)
    for a, b in zip(dense, m(x)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- compile as a config switch
def _coma(eval_interval=None, **kw):
    cfg = dict(backbone=dict(type='DyViT', arch='nano'),
               decoder=dict(type='CoMADecoder', embed_dim=64, depth=1, num_heads=4), mask_ratio=0.6)
    cfg.update(kw)
    model = CoMA(**cfg)
    if eval_interval is not None:
        model.eval_interval = eval_interval
    return model


def _train(model, batches):
    wrapper = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))
    logs = []
    for x in batches:
        logs.append(model.train_step(dict(inputs=x), wrapper))
    return wrapper, logs


def test_compiled_pretraining_and_resume_give_the_eager_weights():
    """CoMA with ``compile`` trains to the weights of the eager model, and a run resumed from a
    state dict under compile ends where the uninterrupted eager run ends."""
    torch.manual_seed(0)
    eager = _coma()
    compiled = _coma(compile=dict(backend='aot_eager'))
    compiled.load_state_dict(eager.state_dict())
    eager.train(), compiled.train()
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(2, 3, 96, 96, generator=g) for _ in range(4)]
    _train(eager, batches)
    # interrupted: 2 steps, then a fresh compiled model resumes from the saved state and optimizer
    first = _coma(compile=dict(backend='aot_eager'))
    first.load_state_dict(compiled.state_dict())
    first.train()
    wrapper, _ = _train(first, batches[:2])
    state, optim = copy.deepcopy(first.state_dict()), copy.deepcopy(wrapper.state_dict())
    resumed = _coma(compile=dict(backend='aot_eager'))
    resumed.load_state_dict(state)
    resumed.train()
    wrapper = OptimWrapper(torch.optim.AdamW(resumed.parameters(), lr=1e-3))
    wrapper.load_state_dict(optim)
    for x in batches[2:]:
        resumed.train_step(dict(inputs=x), wrapper)
    assert int(resumed.mask_step) == 4
    ref = eager.state_dict()
    for k, v in resumed.state_dict().items():
        torch.testing.assert_close(v, ref[k], atol=1e-5, rtol=1e-5, msg=k)


def test_compile_switch_values():
    assert _coma(compile='cuda').compile == 'cuda'
    with pytest.raises(ValueError, match='compile must be'):
        _coma(compile='sometimes')


# ---------------------------------------------------------------- less work per CoMA step
def _count_calls(module, method, monkeypatch):
    calls = []
    original = getattr(module, method)

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)
    monkeypatch.setattr(module, method, spy)
    return calls


def test_loss_eval_every_eval_interval_steps(monkeypatch):
    model = _coma(eval_interval=3)
    model.train()
    decoder_calls = _count_calls(model.frozen_decoder, 'forward', monkeypatch)
    logged = [set(model.loss(torch.randn(2, 3, 64, 64))) for _ in range(7)]
    assert len(decoder_calls) == 3  # steps 0, 3, 6
    assert [('loss_eval' in keys) for keys in logged] == [True, False, False, True, False, False, True]
    assert all({'loss_pix', 'loss_lat'} <= keys for keys in logged)


def test_no_latent_target_when_lambda_lat_is_zero(monkeypatch):
    model = _coma(latent_head=dict(loss_weight=0.0), eval_interval=4)
    model.train()
    encoder_calls = _count_calls(model.frozen_backbone, 'forward_masked', monkeypatch)
    logged = [set(model.loss(torch.randn(2, 3, 64, 64))) for _ in range(5)]
    assert len(encoder_calls) == 2  # steps 0 and 4, for monitoring only
    assert logged[1] == {'loss_pix'}
    assert not any(p.requires_grad for p in model.decoder.latent_head.parameters())


def test_a_failing_compile_falls_back_to_eager(caplog):
    """compile='cuda' is on by default in the full recipes: a compiler failure warns and trains on."""
    def broken_backend(gm, example_inputs):
        raise RuntimeError('no compiler here')
    model = _coma(compile=dict(backend=broken_backend))
    model.train()
    losses = model.loss(torch.randn(2, 3, 64, 64))
    assert torch.isfinite(losses['loss_pix'])
