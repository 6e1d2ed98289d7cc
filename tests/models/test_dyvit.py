"""DyViT: the five SPEC section 3 properties, the public interfaces and the variant budgets."""
import math

import pytest
import torch

from coma.analysis import count_flops, count_params
from coma.models.backbones.dyvit import ARCH_SETTINGS, DyViT, PatchMerging, resolve_arch
from coma.models.layers import dm_msa_fast as fast
from coma.models.layers.dm_msa import DMMSA, CoarseWindows

ARCHS = list(ARCH_SETTINGS)
BUDGETS = {  # (max params, max GMACs) at 224x224, SPEC section 3.5
    'nano': (6e6, None), 'tiny': (20e6, 4.0), 'small': (35e6, 7.0), 'base': (60e6, 12.0)}


# ---------------------------------------------------------------- a plain reference DM-MSA
def reference_dmmsa(attn: DMMSA, x: torch.Tensor, coords: torch.Tensor, grid, window: int, shifted: bool):
    """DM-MSA written out per query with explicit window membership, no grouping tricks.

    x: (B, U, T, C) tokens of the units at (row, col) ``coords`` (B, U, 2) in a ``grid`` of units.
    """
    b, u, t, c = x.shape
    hf, hc, d = attn.fine_heads, attn.coarse_heads, attn.head_dim
    s = attn.unit_side
    scale = d ** -0.5
    q = (x @ attn.q.weight.T + attn.q.bias).view(b, u, t, -1, d)
    kvf = (x @ attn.kv_fine.weight.T + attn.kv_fine.bias).view(b, u, t, 2, hf, d)
    pooled = x.mean(2)
    kvc = (pooled @ attn.kv_coarse.weight.T + attn.kv_coarse.bias).view(b, u, 2, hc, d)
    gate = torch.softmax(pooled @ attn.gate.weight.T + attn.gate.bias, -1) * 2
    out = torch.zeros(b, u, t, c)
    tok = torch.stack(torch.meshgrid(torch.arange(s), torch.arange(s), indexing='ij'), -1).view(t, 2)
    # window ids along each axis, as a padded (and maybe shifted) Swin partition would give
    wins, shifts = [], []
    for g in grid:
        w, sh = (g, 0) if g <= window else (window, window // 2 if shifted else 0)
        wins.append(w)
        shifts.append(sh)
    for bi in range(b):
        for ui in range(u):
            for ti in range(t):
                # fine: the tokens of the same unit
                if t == 1:
                    of = kvf[bi, ui, 0, 1].reshape(-1)
                else:
                    rel = tok[ti] - tok + (s - 1)
                    bias = attn.fine_bias_table[rel[:, 0] * (2 * s - 1) + rel[:, 1]]  # T, hf
                    logits = torch.einsum('hd,khd->hk', q[bi, ui, ti, :hf], kvf[bi, ui, :, 0]) * scale + bias.T
                    of = torch.einsum('hk,khd->hd', logits.softmax(-1), kvf[bi, ui, :, 1]).reshape(-1)
                # coarse: the pooled units of the same window
                r, cc = coords[bi, ui]
                same = torch.ones(u, dtype=torch.bool)
                for axis, (w, sh) in enumerate(zip(wins, shifts)):
                    same &= (coords[bi, :, axis] + sh) // w == (coords[bi, ui, axis] + sh) // w
                keys = same.nonzero()[:, 0]
                off = coords[bi, ui] - coords[bi, keys] + (window - 1)
                bias = attn.coarse_bias_table[off[:, 0] * (2 * window - 1) + off[:, 1]]  # K, hc
                logits = torch.einsum('hd,khd->hk', q[bi, ui, ti, -hc:], kvc[bi, keys, 0]) * scale + bias.T
                oc = torch.einsum('hk,khd->hd', logits.softmax(-1), kvc[bi, keys, 1]).reshape(-1)
                out[bi, ui, ti] = torch.cat([of * gate[bi, ui, 0], oc * gate[bi, ui, 1]])
    return out @ attn.proj.weight.T + attn.proj.bias


def _grid_coords(b, grid):
    ys, xs = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing='ij')
    return torch.stack([ys.flatten(), xs.flatten()], -1).expand(b, -1, -1)


def _randomise(attn):
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0, 0.3)


def _assert_same_output_and_grads(attn, x, fn, ref_fn):
    """Output, input gradient and every parameter gradient of ``fn(x)`` equal ``ref_fn(x)``'s (1e-5)."""
    attn.zero_grad()
    xa, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = fn(xa)
    weight = torch.randn_like(out)
    (out * weight).sum().backward()
    grads = {n: p.grad.clone() for n, p in attn.named_parameters()}
    attn.zero_grad()
    ref = ref_fn(xr)
    (ref * weight).sum().backward()
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(xa.grad, xr.grad, atol=1e-5, rtol=1e-5)
    for n, p in attn.named_parameters():
        torch.testing.assert_close(grads[n], p.grad, atol=1e-5, rtol=1e-5, msg=n)


@pytest.mark.parametrize('side', [1, 2, 4])
@pytest.mark.parametrize('grid,window,shifted', [((3, 3), 7, False), ((5, 4), 2, False), ((5, 4), 2, True)])
def test_dmmsa_dense_matches_reference(grid, window, shifted, side):
    """The plain module equals the per-query reference; the fast executor equals the plain module."""
    attn = DMMSA(16, 4, 2, unit_side=side, coarse_window=window).eval()
    _randomise(attn)
    b = 2
    x = torch.randn(b, grid[0] * grid[1], side * side, 16)
    coords, windows = _grid_coords(b, grid), CoarseWindows(grid, window)
    plain = lambda xr: attn(xr, coords, windows, shifted)  # noqa: E731
    _assert_same_output_and_grads(attn, x, plain,
                                  lambda xr: reference_dmmsa(attn, xr, coords, grid, window, shifted))
    plan = fast.dense_plan(b, grid, window, shifted, x.device, tokens=side * side, heads=attn.coarse_heads)
    _assert_same_output_and_grads(attn, x, lambda xa: fast.attend(attn, xa.reshape(-1, 16), plan).view(x.shape), plain)


@pytest.mark.parametrize('grid,window,shifted', [((4, 4), 7, False), ((5, 4), 2, False), ((5, 4), 2, True)])
def test_dmmsa_masked_matches_reference(grid, window, shifted):
    attn = DMMSA(16, 4, 1, unit_side=2, coarse_window=window).eval()
    _randomise(attn)
    b, n = 2, grid[0] * grid[1]
    ids = torch.stack([torch.randperm(n)[:n // 2].sort().values for _ in range(b)])
    coords = torch.stack([ids // grid[1], ids % grid[1]], -1)
    x = torch.randn(b, ids.shape[1], 4, 16)
    plain = lambda xr: attn(xr, coords, CoarseWindows(grid, window), shifted)  # noqa: E731
    _assert_same_output_and_grads(attn, x, plain, lambda xr: reference_dmmsa(attn, xr, coords, grid, window, shifted))
    plan = fast.masked_plan(ids, grid, window, shifted, tokens=4, heads=attn.coarse_heads)
    _assert_same_output_and_grads(attn, x, lambda xa: fast.attend(attn, xa.reshape(-1, 16), plan).view(x.shape), plain)


def test_coarse_windows_hold_the_shift_rule():
    """A grid that fits one window is one window, never shifted; longer axes are cut into windows and
    shifted by half a window; every unit lands in one slot of one window."""
    assert CoarseWindows((4, 7), 7).shifts == (False,) and CoarseWindows((4, 8), 7).shifts == (False, True)
    windows = CoarseWindows((5, 4), 2)
    assert windows.split(True) == ((2, 1), (2, 1)) and windows.split(False) == ((2, 0), (2, 0))
    assert CoarseWindows((2, 5), 3).split(True) == ((2, 0), (3, 1))  # only the long axis shifts
    coords = _grid_coords(1, (5, 4))[0]
    win, local = windows.place(coords, True)
    assert len({(int(w), int(l[0]), int(l[1])) for w, l in zip(win, local)}) == 20
    rel = windows.rel_index(coords, True)
    assert (rel == 9).sum() > 0 and (rel.diagonal() == 4).all()  # pairs in no window; self at offset 0


def test_dmmsa_rejects_a_plan_of_another_stage():
    attn = DMMSA(16, 4, 2, unit_side=2, coarse_window=7)
    plan = fast.dense_plan(1, (2, 2), 7, False, torch.device('cpu'), tokens=16, heads=2)
    with pytest.raises(ValueError, match='plan built for T=16'):
        fast.attend(attn, torch.randn(16, 16), plan)


def test_dmmsa_has_two_scales_and_dynamic_fusion():
    attn = DMMSA(32, 4, 2, unit_side=4, coarse_window=7)
    assert attn.fine_heads >= 1 and attn.coarse_heads >= 1
    with torch.no_grad():
        attn.gate.weight.normal_()
    x = torch.randn(1, 4, 16, 32)
    pooled = x.mean(2)
    w = attn.gate(pooled).softmax(-1)
    # input-dependent: different units get different group weights
    assert (w[0, 0] - w[0, 1]).abs().max() > 1e-3
    # zeroing the gate for a group removes that group's contribution
    coords, windows = _grid_coords(1, (2, 2)), CoarseWindows((2, 2), 7)
    with torch.no_grad():
        attn.gate.weight.zero_()
        attn.gate.bias.copy_(torch.tensor([50.0, -50.0]))
        only_fine = attn(x, coords, windows, False)
        attn.kv_coarse.weight.normal_()
        assert torch.allclose(only_fine, attn(x, coords, windows, False), atol=1e-5)


# ---------------------------------------------------------------- property 1: hierarchy, leak-free stem
@pytest.mark.parametrize('arch', ARCHS)
def test_hierarchy_strides_and_widths(arch):
    m = DyViT(arch).eval()
    c = ARCH_SETTINGS[arch]['embed_dim']
    with torch.no_grad():
        outs = m(torch.randn(1, 3, 64, 96))
    assert [o.shape[1] for o in outs] == [c, 2 * c, 4 * c, 8 * c]
    assert [o.shape[2:] for o in outs] == [(64 // r, 96 // r) for r in (4, 8, 16, 32)]
    assert m.patch_embed.kernel_size == (4, 4) and m.patch_embed.stride == (4, 4)
    assert [f['reduction'] for f in m.feature_info] == [4, 8, 16, 32]


def test_stem_and_merges_stay_inside_units():
    m = DyViT('nano').eval()
    x = torch.randn(1, 3, 64, 64)
    y = x.clone()
    y[..., :32, :32] = torch.randn(1, 3, 32, 32)  # unit 0 changes
    with torch.no_grad():
        ta, tb = (m._embed_image(v, (2, 2)) for v in (x, y))
        for stage in m.stages[:-1]:
            assert isinstance(stage.downsample, PatchMerging)
            ta, tb = stage.downsample(ta), stage.downsample(tb)
    ta, tb = (t.view(1, 4, -1, t.shape[-1]) for t in (ta, tb))  # unit-major rows -> B, U, T, C
    assert not torch.equal(ta[:, 0], tb[:, 0])
    assert torch.equal(ta[:, 1:], tb[:, 1:])


# ---------------------------------------------------------------- property 3: sparse masked forward
def _mask(b, grid, keep, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = grid[0] * grid[1]
    mask = torch.ones(b, n, dtype=torch.bool)
    for i in range(b):
        mask[i, torch.randperm(n, generator=g)[:keep]] = False
    return mask.view(b, *grid)


@pytest.mark.parametrize('size', [(224, 224), (288, 352)])
def test_masked_forward_is_leak_free(size):
    m = DyViT('nano').eval()
    grid = (size[0] // 32, size[1] // 32)
    mask = _mask(2, grid, keep=int(0.4 * grid[0] * grid[1]))
    x = torch.randn(2, 3, *size)
    y = x + 5 * torch.randn_like(x) * mask.repeat_interleave(32, 1).repeat_interleave(32, 2)[:, None]
    with torch.no_grad():
        a, b = m.forward_masked(x, mask), m.forward_masked(y, mask)
    assert a.shape == (2, int(0.4 * grid[0] * grid[1]), 256)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # and visible pixels do matter
    z = x + torch.randn_like(x) * (~mask).repeat_interleave(32, 1).repeat_interleave(32, 2)[:, None]
    with torch.no_grad():
        assert (m.forward_masked(z, mask) - a).abs().max() > 1e-3


def test_masked_all_visible_equals_dense():
    m = DyViT('nano').eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        dense = m(x)[-1].flatten(2).transpose(1, 2)
        masked = m.forward_masked(x, torch.zeros(2, 7, 7, dtype=torch.bool))
    torch.testing.assert_close(masked, dense, atol=1e-5, rtol=1e-5)


def test_masked_work_scales_with_visible_fraction():
    class Masked(torch.nn.Module):
        def __init__(self, m, mask):
            super().__init__()
            self.m, self.mask = m, mask

        def forward(self, x):
            return self.m.forward_masked(x, self.mask)

    m = DyViT('tiny')
    x = torch.randn(1, 3, 224, 224)
    dense = count_flops(m, (x,))
    masked = count_flops(Masked(m, _mask(1, (7, 7), keep=20)), (x,))
    assert masked / dense < 0.45  # 20/49 = 0.41 of the units


def test_masked_rejects_bad_masks():
    m = DyViT('nano')
    x = torch.randn(2, 3, 64, 64)
    with pytest.raises(ValueError, match='mask shape'):
        m.forward_masked(x, torch.zeros(2, 3, 3, dtype=torch.bool))
    uneven = torch.zeros(2, 2, 2, dtype=torch.bool)
    uneven[0, 0, 0] = True
    with pytest.raises(ValueError, match='same number'):
        m.forward_masked(x, uneven)


# ---------------------------------------------------------------- property 4: dense forward contract
@pytest.mark.parametrize('size', [(511, 767), (97, 33), (32, 32)])
def test_dense_any_size(size):
    m = DyViT('nano', out_indices=(1, 3)).eval()
    with torch.no_grad():
        outs = m(torch.randn(1, 3, *size))
    assert len(outs) == 2
    assert [tuple(o.shape[2:]) for o in outs] == [tuple(math.ceil(s / r) for s in size) for r in (8, 32)]
    assert all(torch.isfinite(o).all() for o in outs)
    assert hasattr(m, 'norm1') and hasattr(m, 'norm3') and not hasattr(m, 'norm0')


def test_dense_detection_size():
    m = DyViT('nano').eval()
    with torch.no_grad():
        outs = m(torch.randn(1, 3, 800, 1333))
    assert [tuple(o.shape[2:]) for o in outs] == [(200, 334), (100, 167), (50, 84), (25, 42)]


def test_frozen_stages():
    m = DyViT('nano', frozen_stages=2)
    m.train()
    assert not any(p.requires_grad for p in m.patch_embed.parameters())
    assert not any(p.requires_grad for p in m.stages[1].parameters())
    assert all(p.requires_grad for p in m.stages[2].parameters())
    assert not m.stages[0].training and m.stages[2].training


def test_with_cp_matches_plain():
    torch.manual_seed(0)
    a = DyViT('nano')
    b = DyViT('nano', with_cp=True)
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 64, 64)
    sa, sb = sum(o.sum() for o in a(x)), sum(o.sum() for o in b(x))
    sa.backward()
    sb.backward()
    torch.testing.assert_close(sa, sb)
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, atol=1e-5, rtol=1e-4, msg=n)


@pytest.mark.parametrize('fast_path', [True, False])
def test_with_cp_recomputes_each_block_in_the_backward(fast_path, monkeypatch):
    """Checkpointing does what it is for: each block's forward runs again in the backward (and only
    then), so its activations were not kept; through the fast executor and through the plain modules."""
    monkeypatch.setattr(DyViT, 'fast', fast_path)
    calls = {}
    for with_cp in (False, True):
        m = DyViT('nano', with_cp=with_cp)
        count = [0]
        if fast_path:
            def counted(*args, _run=fast.run_block, **kwargs):
                count[0] += 1
                return _run(*args, **kwargs)
            monkeypatch.setattr(fast, 'run_block', counted)
        else:
            for stage in m.stages:
                for blk in stage.blocks:  # counted around forward: the recomputation runs no module hooks
                    def counted(*args, _forward=blk.forward, **kwargs):
                        count[0] += 1
                        return _forward(*args, **kwargs)
                    blk.forward = counted
        out = sum(o.sum() for o in m(torch.randn(1, 3, 64, 64)))
        forward = count[0]
        out.backward()
        calls[with_cp] = (forward, count[0] - forward)
        monkeypatch.undo()
        monkeypatch.setattr(DyViT, 'fast', fast_path)
    blocks = sum(ARCH_SETTINGS['nano']['depths'])
    assert calls == {False: (blocks, 0), True: (blocks, blocks)}


def test_drop_path():
    m = DyViT('nano', drop_path_rate=0.5)
    x = torch.randn(2, 3, 64, 64)
    m.train()
    assert not torch.equal(m(x)[-1], m(x)[-1])
    m.eval()
    with torch.no_grad():
        assert torch.equal(m(x)[-1], m(x)[-1])


# ---------------------------------------------------------------- property 5: variants and budgets
@pytest.mark.parametrize('arch', ARCHS)
def test_budgets(arch):
    m = DyViT(arch)
    max_params, max_gmacs = BUDGETS[arch]
    assert count_params(m) <= max_params
    if max_gmacs is not None:
        assert count_flops(m, (torch.randn(1, 3, 224, 224),)) / 1e9 <= max_gmacs


def test_flop_counter_matches_published_figures():
    timm = pytest.importorskip('timm')
    x = torch.randn(1, 3, 224, 224)
    assert abs(count_flops(timm.create_model('vit_base_patch16_224'), (x,)) / 1e9 - 17.6) < 0.1
    assert abs(count_flops(timm.create_model('swin_tiny_patch4_window7_224'), (x,)) / 1e9 - 4.5) < 0.1


@pytest.mark.parametrize('arch', ARCHS)
def test_every_parameter_gets_a_gradient(arch):
    m = DyViT(arch)
    outs = m(torch.randn(1, 3, 96, 64))
    sum(o.square().mean() for o in outs).backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    # the coarse tables are reached too (needs a grid wider than one unit)
    assert all(p.grad.abs().sum() > 0 for n, p in m.named_parameters() if 'coarse_bias_table' in n)


def test_arch_validation():
    with pytest.raises(KeyError, match="unknown arch 'huge'.*allowed"):
        DyViT('huge')
    with pytest.raises(KeyError, match='unknown keys'):
        DyViT(dict(resolve_arch('nano'), depth=(1, 1, 1, 1)))
    custom = dict(embed_dim=16, depths=(1, 1, 1, 1), num_heads=(2, 2, 4, 4), fine_heads=(1, 1, 2, 2))
    assert DyViT(custom)(torch.randn(1, 3, 32, 32))[0].shape[1] == 16
    with pytest.raises(ValueError, match='out_indices'):
        DyViT('nano', out_indices=(4,))


# ---------------------------------------------------------------- checkpoints made by the DM-MSA of aa32a02
def test_checkpoint_made_before_the_fast_dmmsa_gives_the_same_features():
    """A converted backbone and its features, made here by the DM-MSA of commit aa32a02 (taken from
    the repository's history by tests/data/make_dmmsa_aa32a02_fixture.py). The state dict is unchanged,
    so it loads strictly and the features agree to 1e-5."""
    import os
    import subprocess
    import sys
    import tempfile

    from coma.models.checkpoint import load_backbone_checkpoint
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
    here = tempfile.mkdtemp()
    old = os.path.join(here, 'old')
    os.makedirs(old)
    archive = subprocess.run(['git', '-C', root, 'archive', 'aa32a02', 'coma'], capture_output=True)
    assert archive.returncode == 0, ('commit aa32a02 is not in this clone\'s history: '
                                     + archive.stderr.decode()[-300:])
    subprocess.run(['tar', '-x', '-C', old], input=archive.stdout, check=True)
    subprocess.run([sys.executable, os.path.join(root, 'tests', 'data', 'make_dmmsa_aa32a02_fixture.py'), old, here],
                   check=True, capture_output=True)
    ckpt = os.path.join(here, 'dyvit_aa32a02_converted.pth')
    ref = torch.load(os.path.join(here, 'dyvit_aa32a02_features.pth'))
    cfg = torch.load(ckpt)['meta']['backbone']
    m = DyViT(cfg['arch'], out_indices=cfg['out_indices']).eval()
    missing, unexpected = load_backbone_checkpoint(m, ckpt)
    assert missing == [] and unexpected == []
    with torch.no_grad():
        feats = m(ref['dense_input'])
        masked = m.forward_masked(ref['masked_input'], ref['mask'])
        masked_static = m.forward_masked(ref['masked_input'], ref['mask'], num_visible=20)
    for a, b in zip(feats, ref['dense_features']):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(masked, ref['masked_features'], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(masked_static, masked)


def test_fusion_heads_of_earlier_pretraining_checkpoints_are_dropped_on_conversion(tmp_path):
    """Earlier pre-training runs could fuse the stages through ``fusion_heads`` (``masked_fusion``, in
    the backbone config): the converter drops both, so the backbone loads strictly into a DyViT."""
    from coma.models.checkpoint import convert_pretrain_checkpoint, load_backbone_checkpoint
    plain = DyViT('nano', out_indices=(3,))
    state = {f'backbone.{k}': v for k, v in plain.state_dict().items()}
    state.update({f'backbone.fusion_heads.{i}.{k}': torch.zeros(3) for i in range(3) for k in ('bias', 'weight')})
    src, dst = tmp_path / 'pretrain.pth', tmp_path / 'backbone.pth'
    torch.save(dict(state_dict=state), src)
    summary = convert_pretrain_checkpoint(str(src), str(dst), backbone_cfg=dict(
        type='DyViT', arch='nano', out_indices=(3,), masked_fusion=False, coarse_locality=0.0))
    assert summary['tensors'] == len(plain.state_dict())
    assert 'masked_fusion' not in summary['backbone'] and 'coarse_locality' not in summary['backbone']
    load_backbone_checkpoint(DyViT('nano', out_indices=(3,)), str(dst))  # strict: no unexpected keys


@pytest.mark.parametrize('mode', ['dense', 'masked'])
def test_the_fast_executor_gives_the_plain_modules_outputs_and_gradients(mode, monkeypatch):
    """The whole backbone through :mod:`dm_msa_fast` (DyViT's default) and through the plain modules:
    the same outputs, input gradients and parameter gradients, over shifted windows (1e-5 relative)."""
    torch.manual_seed(0)
    m = DyViT('nano', coarse_window=2, drop_path_rate=0.0).train()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    x, mask = torch.randn(2, 3, 160, 128), _mask(2, (5, 4), keep=9)
    results = {}
    for fast_path in (True, False):
        monkeypatch.setattr(DyViT, 'fast', fast_path)
        m.zero_grad()
        xi = x.clone().requires_grad_()
        outs = m(xi) if mode == 'dense' else (m.forward_masked(xi, mask, 9),)
        sum((o * torch.linspace(-1, 1, o.numel()).view(o.shape)).sum() for o in outs).backward()
        results[fast_path] = ([o.detach() for o in outs], xi.grad, {n: p.grad.clone() for n, p in m.named_parameters()
                                                                   if p.grad is not None})
    (fo, fx, fg), (po, px, pg) = results[True], results[False]
    for a, b in zip(fo, po):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fx, px, atol=1e-5, rtol=1e-5)
    assert fg.keys() == pg.keys() and len(fg) > 0
    for n in fg:
        torch.testing.assert_close(fg[n], pg[n], atol=1e-4, rtol=1e-4, msg=lambda m, n=n: f'{n}: {m}')
