"""Made with the DM-MSA of commit aa32a02: a converted backbone checkpoint and its features.

    python tests/data/make_dmmsa_aa32a02_fixture.py OLD_SOURCE OUT_DIR   # OLD_SOURCE: `git archive aa32a02 coma`
"""
import os, sys, types, torch
root, out = sys.argv[1], sys.argv[2]  # a checkout of commit aa32a02; where the two files go
sys.path.insert(0, root)
pkg = types.ModuleType('coma'); pkg.__path__ = [root + '/coma']; sys.modules['coma'] = pkg
mm = types.ModuleType('coma.models'); mm.__path__ = [root + '/coma/models']; sys.modules['coma.models'] = mm
from coma.models.backbones.dyvit import DyViT
torch.manual_seed(0)
arch = dict(embed_dim=8, depths=(1, 1, 2, 2), num_heads=(2, 2, 4, 8), fine_heads=(1, 1, 2, 4))
m = DyViT(arch).eval()
with torch.no_grad():
    for p in m.parameters():
        p.add_(torch.randn_like(p) * 0.1)
g = torch.Generator().manual_seed(0)
x = torch.randn(1, 3, 65, 97, generator=g)
xm = torch.randn(1, 3, 224, 224, generator=g)
mask = torch.ones(1, 49, dtype=torch.bool)
for i in range(1):
    mask[i, torch.randperm(49, generator=g)[:20]] = False
mask = mask.view(1, 7, 7)
with torch.no_grad():
    feats = [f.clone() for f in m(x)]
    masked = m.forward_masked(xm, mask)
torch.save(dict(state_dict=m.state_dict(), meta=dict(backbone=dict(type='DyViT', arch=arch, out_indices=(0, 1, 2, 3)),
                                                    made_by='DyViT of commit aa32a02')),
           os.path.join(out, 'dyvit_aa32a02_converted.pth'))
torch.save(dict(dense_input=x, dense_features=feats, masked_input=xm, mask=mask, masked_features=masked),
           os.path.join(out, 'dyvit_aa32a02_features.pth'))
print(sum(p.numel() for p in m.parameters()))
