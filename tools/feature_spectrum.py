"""How many directions do a backbone's pooled features use? (the diagnosis in docs/results.md)

    python tools/feature_spectrum.py DATA_ROOT [CKPT ...] [--split val] [--images 50]

For each converted backbone checkpoint (``random`` for a random initialisation), the pooled
last-stage DyViT-N features of ``--images`` images of ``DATA_ROOT/<split>`` (centre crops, as the
linear probe sees them) are centred over the images; printed are the share of their variance on
the first principal component and the effective rank (exp of the entropy of the normalised
spectrum). A representation that the linear probe can use has several directions.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

import torch  # noqa: E402

LINPROBE_CFG = os.path.join(os.path.dirname(__file__), '..', 'imagenet_configs', 'linprobe_dyvit-n_1xb32-coslr-20e_demo.py')


def spectrum(feats: torch.Tensor):
    """``(N, C)`` features -> (first-component variance share, effective rank)."""
    s2 = torch.linalg.svdvals(feats - feats.mean(0)) ** 2
    p = s2 / s2.sum()
    return float(p[0]), float(torch.exp(-(p * p.clamp_min(1e-12).log()).sum()))


@torch.no_grad()
def pooled_features(ckpt, data_root: str, split: str, images: int) -> torch.Tensor:
    import coma  # noqa: F401
    from mmengine.config import Config
    from mmengine.registry import DATASETS, MODELS
    cfg = Config.fromfile(LINPROBE_CFG)
    torch.manual_seed(0)
    model = MODELS.build(dict(cfg.model, backbone=dict(cfg.model.backbone, init_cfg=dict(
        type='Pretrained', checkpoint=None if ckpt == 'random' else ckpt))))
    model.init_weights()
    model.eval()
    ds = DATASETS.build(dict(cfg.val_dataloader.dataset, data_root=data_root, data_prefix=dict(img_path=split)))
    step = max(1, len(ds) // images)
    items = [ds[i] for i in range(0, len(ds), step)][:images]
    data = model.data_preprocessor(dict(inputs=[x['inputs'] for x in items]))
    return model.extract_feat(data['inputs'])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('data_root')
    p.add_argument('checkpoints', nargs='*', default=['random'])
    p.add_argument('--split', default='val')
    p.add_argument('--images', type=int, default=50)
    args = p.parse_args(argv)
    rows = []
    print('| backbone | variance on the 1st component | effective rank |\n| --- | --- | --- |')
    for ckpt in args.checkpoints:
        pc1, rank = spectrum(pooled_features(ckpt, args.data_root, args.split, args.images))
        rows.append((ckpt, pc1, rank))
        print(f'| {ckpt} | {pc1:.3f} | {rank:.1f} |', flush=True)
    return rows


if __name__ == '__main__':
    main()
