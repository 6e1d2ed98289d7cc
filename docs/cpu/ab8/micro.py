"""One process: median seconds of a DyViT call (batch 8, 224x224, 2 threads) over 7 calls.

Modes: fwd (dense, eval, no_grad), masked (forward_masked at 20 of 49 units, eval, no_grad),
train (forward_masked + backward of its mean square, train mode: the pre-training pattern).
"""
import statistics
import sys
import time

import torch

torch.set_num_threads(2)
from coma.models import DyViT  # noqa: E402

arch, mode = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
m = DyViT(arch)
m.train(mode == 'train')
x = torch.randn(8, 3, 224, 224)
mask = torch.zeros(8, 7, 7, dtype=torch.bool).flatten(1)
for i in range(8):
    mask[i, torch.randperm(49)[:29]] = True
mask = mask.view(8, 7, 7)


def call():
    if mode == 'fwd':
        with torch.no_grad():
            return m(x)
    if mode == 'masked':
        with torch.no_grad():
            return m.forward_masked(x, mask, 20)
    m.zero_grad(set_to_none=True)
    m.forward_masked(x, mask, 20).square().mean().backward()


ts = []
call()
call()
for _ in range(7):
    t = time.perf_counter()
    call()
    ts.append(time.perf_counter() - t)
print(f'{statistics.median(ts):.4f}')
