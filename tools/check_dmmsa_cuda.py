"""DM-MSA on CUDA: the same numbers as on CPU, fused SDPA kernels only, whole-graph compilation.

    python tools/check_dmmsa_cuda.py [--skip-compile]

Float32 with TF32 off: DyViT-B dense (224x224 and 320x256, shifted windows) and masked (20 of 49 units)
outputs and parameter gradients on CUDA equal the CPU ones to 1e-5 (the CPU path equals the
reference loop and the pre-issue-11 checkpoint in the tests). With the math SDPA backend disabled the
forward still runs (every attention mask is accepted by a fused kernel). ``torch.compile(fullgraph=True,
dynamic=False)`` of ``forward`` and ``forward_masked`` equals eager (``--skip-compile`` leaves this
check out: its two compilations take minutes, and tools/gpu_speed.sh compiles the same forwards in its
benchmark rows). Prints one line per check.
"""
import argparse

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

import coma  # noqa: F401
from coma.models import DyViT


def _max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float().cpu() - b.float().cpu()).abs().max() / (b.abs().max() + 1e-12))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--skip-compile', action='store_true', help='leave out the compiled-vs-eager check')
    args = p.parse_args(argv)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    cpu = DyViT('base')
    gpu = DyViT('base').cuda()
    gpu.load_state_dict(cpu.state_dict())
    g = torch.Generator().manual_seed(0)
    mask = torch.ones(2, 49, dtype=torch.bool)
    for i in range(2):
        mask[i, torch.randperm(49, generator=g)[:20]] = False
    mask = mask.view(2, 7, 7)
    cases = [('dense 224', torch.randn(2, 3, 224, 224, generator=g), None),
             ('dense 256x320', torch.randn(2, 3, 256, 320, generator=g), None),
             ('masked 224', torch.randn(2, 3, 224, 224, generator=g), mask)]
    for name, x, m in cases:
        outs = []
        for model, dev in ((cpu, 'cpu'), (gpu, 'cuda')):
            model.zero_grad()
            y = model(x.to(dev)) if m is None else (model.forward_masked(x.to(dev), m.to(dev), 20),)
            sum(t.square().mean() for t in y).backward()
            outs.append(([t.detach() for t in y], [p.grad for p in model.parameters()]))
        out_err = max(_max_rel(a, b) for a, b in zip(outs[1][0], outs[0][0]))
        grad_err = max(_max_rel(a, b) for a, b in zip(outs[1][1], outs[0][1]) if b is not None)
        print(f'{name}: CUDA vs CPU max relative error output {out_err:.2e}, gradients {grad_err:.2e}',
              'OK' if max(out_err, grad_err) < 1e-5 else 'FAIL')

    x = torch.randn(128, 3, 224, 224, device='cuda')
    keep = mask.repeat(64, 1, 1).cuda()
    gpu.eval()
    with torch.no_grad(), torch.autocast('cuda', dtype=torch.bfloat16):
        try:
            with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION]):
                gpu(x)
                gpu.forward_masked(x, keep, 20)
            print('fused SDPA kernels only (math disabled), bf16 batch 128: OK')
        except RuntimeError as err:
            print(f'fused SDPA kernels only: FAIL {str(err)[:300]}')
        if args.skip_compile:
            return
        eager_d, eager_m = gpu(x), gpu.forward_masked(x, keep, 20)
        comp_d = torch.compile(gpu.forward, fullgraph=True, dynamic=False)(x)
        comp_m = torch.compile(gpu.forward_masked, fullgraph=True, dynamic=False)(x, keep, 20)
    err_d = max(_max_rel(a, b) for a, b in zip(comp_d, eager_d))
    err_m = _max_rel(comp_m, eager_m)
    print(f'compiled (fullgraph, bf16) vs eager: dense {err_d:.2e}, masked {err_m:.2e}',
          'OK' if max(err_d, err_m) < 2e-2 else 'FAIL')


if __name__ == '__main__':
    main()
