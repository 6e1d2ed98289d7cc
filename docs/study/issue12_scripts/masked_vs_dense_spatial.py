"""Issue 12, sixth session: spatial variation of the stride-32 features in the dense forward and in the
masked forward (20 of 49 units visible) of the study checkpoints: is the collapse a dense/masked mismatch?
Run from the repository root: python docs/study/issue12_scripts/masked_vs_dense_spatial.py"""
import json, torch
from coma.diagnosis import downstream_dyvit, load_image_batch
torch.manual_seed(0)
images = load_image_batch(None, 16, 224)
b = images.shape[0]
g = torch.Generator().manual_seed(0)
noise = torch.rand(b, 49, generator=g)
keep = 20
ids = noise.argsort(1)[:, :keep].sort(1).values
mask = torch.ones(b, 49, dtype=torch.bool); mask.scatter_(1, ids, False); mask = mask.view(b, 7, 7)
def sv(f):  # f: B, N, C -> spatial variation over the N units
    return float(f.std(1).mean() / f.std())
for name in ['random_s0_e0', 'coma_s0_e2', 'coma_s0_e8', 'coma_s0_e16', 'mae_s0_e16']:
    ck = json.load(open(f'work_dirs/study_latentfix/{name}/pretrain.json'))['value']
    net = downstream_dyvit(ck, 'nano', 0).eval()
    with torch.no_grad():
        dense = net(images)[3].flatten(2).transpose(1, 2)  # B, 49, C
        masked = net.forward_masked(images, mask, keep)      # B, 20, C
        dense_sel = torch.gather(dense, 1, ids[..., None].expand(-1, -1, dense.shape[-1]))
    print(name, 'dense all %.2f' % sv(dense), 'dense at visible %.2f' % sv(dense_sel), 'masked %.2f' % sv(masked))
