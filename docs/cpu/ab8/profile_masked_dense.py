"""Profile of one DyViT-B forward, dense against masked (20 of 49 units), batch 8, 1 thread: self CPU time per op."""
import torch
torch.set_num_threads(1)
from coma.models import DyViT
torch.manual_seed(0)
m = DyViT('base').eval(); x = torch.randn(8, 3, 224, 224)
mask = torch.zeros(8, 49, dtype=torch.bool)
for i in range(8): mask[i, torch.randperm(49)[:29]] = True
mask = mask.view(8, 7, 7)
res = {}
with torch.no_grad():
    for name, fn in (('dense', lambda: m(x)), ('masked', lambda: m.forward_masked(x, mask, 20))):
        fn(); fn()
        with torch.profiler.profile() as p:
            for _ in range(3): fn()
        res[name] = {e.key: e.self_cpu_time_total / 3e3 for e in p.key_averages()}
keys = sorted(res['dense'], key=lambda k: -res['dense'][k])[:12]
tot = {k: sum(v.values()) for k, v in res.items()}
print('total ms', {k: round(v, 1) for k, v in tot.items()}, 'ratio', round(tot['masked'] / tot['dense'], 3))
for k in keys:
    d, mm = res['dense'][k], res['masked'].get(k, 0)
    print(f'{k:55s} dense {d:8.1f} ms  masked {mm:8.1f} ms  ratio {mm / d:.2f}')
