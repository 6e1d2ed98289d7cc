# Run in a checkout: PYTHONPATH=. python docs/cpu/ab8/eqcheck.py save REF.pt (old side), then ... cmp REF.pt (new side; PACK=1 forces the packed path).
"""Saves (or compares) DyViT-T outputs: dense at 200x150 (padding, shifted windows), 224, masked at 160x128 and 224, grads."""
import sys, torch
sys.path.insert(0, '.')
from coma.models.backbones.dyvit import DyViT, DyViTStage
import os
if os.environ.get("PACK"): DyViTStage.pack_weights = True
torch.manual_seed(0)
def rnd(m):
    with torch.no_grad():
        for n, p in m.named_parameters():
            if 'gate' in n or 'bias_table' in n: p.normal_(0, 0.5)
            elif p.ndim == 1: p.normal_(0, 0.1)
    return m.eval()
m = rnd(DyViT(arch='tiny', coarse_window=3))
g = torch.Generator().manual_seed(1)
outs = {}
x1 = torch.randn(2, 3, 200, 150, generator=g)
outs.update({f'dense200_{i}': o for i, o in enumerate(m(x1))})
x2 = torch.randn(2, 3, 160, 128, generator=g)
mask = torch.zeros(2, 5, 4, dtype=torch.bool)
for b in range(2): mask.view(2, -1)[b, torch.randperm(20, generator=g)[:12]] = True
outs['masked160'] = m.forward_masked(x2, mask)
m7 = rnd(DyViT(arch='tiny'))
x3 = torch.randn(2, 3, 224, 224, generator=g)
mask = torch.zeros(2, 7, 7, dtype=torch.bool)
for b in range(2): mask.view(2, -1)[b, torch.randperm(49, generator=g)[:29]] = True
outs['masked224'] = m7.forward_masked(x3, mask, 20)
outs.update({f'dense224_{i}': o for i, o in enumerate(m7(x3))})
m7.train()
loss = m7.forward_masked(x3, mask, 20).square().mean() + sum(o.square().mean() for o in m7(x3))
loss.backward()
for n, p in m7.named_parameters():
    if p.grad is not None: outs['grad.' + n] = p.grad
outs = {k: v.detach() for k, v in outs.items()}
if sys.argv[1] == 'save':
    torch.save(outs, sys.argv[2])
else:
    ref = torch.load(sys.argv[2])
    worst = max((((ref[k] - outs[k]).abs().max().item() / max(ref[k].abs().max().item(), 1e-12)), k) for k in ref)
    assert set(ref) == set(outs), set(ref) ^ set(outs)
    print('max rel diff', worst, 'n', len(ref))
