"""Where DyViT's time goes: torch.profiler's top operators for a dense and a masked forward.

    python tools/profile_backbone.py [--arch base] [--batch 128] [--device cuda] [--amp] [--top 15]
"""
import argparse

import torch


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--arch', default='base')
    p.add_argument('--batch', type=int, default=128)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--amp', action='store_true')
    p.add_argument('--top', type=int, default=15)
    args = p.parse_args(argv)
    import coma  # noqa: F401
    from coma.models import DyViT
    dev = torch.device(args.device)
    model = DyViT(args.arch).to(dev).eval()
    x = torch.randn(args.batch, 3, 224, 224, device=dev)
    mask = torch.rand(args.batch, 49, device=dev).argsort(1).argsort(1) >= 20  # 20 visible units
    mask = mask.view(-1, 7, 7)
    acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if dev.type == 'cuda' else [])
    key = 'cuda_time_total' if dev.type == 'cuda' else 'cpu_time_total'
    for name, fn in (('dense', lambda: model(x)), ('masked', lambda: model.forward_masked(x, mask))):
        with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.amp):
            for _ in range(3):
                fn()
            if dev.type == 'cuda':
                torch.cuda.synchronize()
            with torch.profiler.profile(activities=acts) as prof:
                fn()
                if dev.type == 'cuda':
                    torch.cuda.synchronize()
        print(f'== {name} forward, DyViT-{args.arch}, batch {args.batch}, {dev.type}, amp={args.amp}')
        print(prof.key_averages().table(sort_by=key, row_limit=args.top, max_name_column_width=48))


if __name__ == '__main__':
    main()
