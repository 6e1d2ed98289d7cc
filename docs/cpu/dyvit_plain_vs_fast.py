"""DyViT-B on the CPU: the fast executor against the plain modules, same weights, batch 8, 224 px."""
import json, statistics, sys, time
import torch
from coma.models import DyViT
torch.manual_seed(0)
torch.set_num_threads(2)
m = DyViT('base', out_indices=(3,))
x = torch.randn(8, 3, 224, 224)
gh = 7
mask = torch.ones(8, 49, dtype=torch.bool)
for i in range(8):
    mask[i, torch.randperm(49)[:20]] = False
mask = mask.view(8, 7, 7)
def dense():
    with torch.no_grad():
        m(x)
def masked_train():
    out = m.forward_masked(x, mask, 20)
    out.square().mean().backward()
rows = {}
for name, fn in (('dense fwd', dense), ('masked fwd+bwd', masked_train)):
    for fast in (True, False):
        DyViT.fast = fast
        fn()  # warm-up
    times = {True: [], False: []}
    for _ in range(5):
        for fast in (True, False):
            DyViT.fast = fast
            t = time.perf_counter(); fn(); times[fast].append(time.perf_counter() - t)
    rows[name] = {'fast_s': statistics.median(times[True]), 'plain_s': statistics.median(times[False]),
                  'plain/fast': statistics.median(times[False]) / statistics.median(times[True]),
                  'runs_fast': times[True], 'runs_plain': times[False]}
    print(name, rows[name]['fast_s'], rows[name]['plain_s'], rows[name]['plain/fast'], flush=True)
json.dump(dict(what='DyViT-B, batch 8, 224 px, CPU 2 threads: DyViT.fast True (dm_msa_fast) vs False (plain DMMSA); median of 5, interleaved',
               load=open('/proc/loadavg').read().split()[:3], torch=torch.__version__, rows=rows),
          open(sys.argv[1], 'w'), indent=1)
