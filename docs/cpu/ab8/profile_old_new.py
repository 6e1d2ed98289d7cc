"""Profile of 3 DyViT-B dense forwards (batch 8, 2 threads): run in each checkout, PYTHONPATH=CHECKOUT."""
import torch, time
torch.set_num_threads(2)
from coma.models import DyViT
torch.manual_seed(0)
m = DyViT('base').eval(); x = torch.randn(8, 3, 224, 224)
with torch.no_grad():
    for _ in range(2): m(x)
    with torch.profiler.profile() as p:
        for _ in range(3): m(x)
print(p.key_averages().table(sort_by='self_cpu_time_total', row_limit=12))
