"""One process: median seconds of a DyViT forward (batch 8, 224x224, 2 threads, eval, no_grad) over 9 calls."""
import sys, time, statistics, torch
torch.set_num_threads(2)
from coma.models import DyViT
arch, mode = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
m = DyViT(arch).eval(); x = torch.randn(8, 3, 224, 224)
mask = torch.zeros(8, 7, 7, dtype=torch.bool).flatten(1)
for i in range(8): mask[i, torch.randperm(49)[:29]] = True
mask = mask.view(8, 7, 7)
call = (lambda: m(x)) if mode == 'fwd' else (lambda: m.forward_masked(x, mask, 20))
ts = []
with torch.no_grad():
    call(); call()
    for _ in range(9):
        t = time.perf_counter(); call(); ts.append(time.perf_counter() - t)
print(f'{statistics.median(ts):.4f}')
