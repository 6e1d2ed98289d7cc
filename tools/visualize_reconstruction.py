"""Original, M_t's view and reconstruction, M_{t-1}'s view and reconstruction, as one PNG.

    python tools/visualize_reconstruction.py CHECKPOINT IMAGE [--config CFG] [--size 224] [--out recon.png]

The config is read from the checkpoint (mmengine stores it) unless ``--config`` is given. With
``norm_pix`` the predictions are per-unit normalised; they are mapped back with each unit's own
mean and standard deviation, as MAE's visualisation does.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def load_model(checkpoint: str, config: str = None):
    import coma  # noqa: F401
    from mmengine.config import Config
    from mmengine.registry import MODELS
    from coma.engine import safe_torch_load
    from coma.models.checkpoint import extract_state_dict
    ckpt = safe_torch_load(checkpoint, map_location='cpu')
    if config:
        cfg = Config.fromfile(config)
    else:
        text = ckpt.get('meta', {}).get('cfg')
        if not text:
            raise KeyError(f'{checkpoint} carries no config; pass --config')
        cfg = Config.fromstring(text, '.py')
    model = MODELS.build(cfg.model)
    missing, unexpected = model.load_state_dict(extract_state_dict(ckpt), strict=False)
    if unexpected or [k for k in missing if not k.startswith('data_preprocessor')]:
        raise ValueError(f'{checkpoint} does not fit {cfg.model.type}: missing {missing[:10]}, unexpected {unexpected[:10]}')
    return model.eval()


def unit_images(model, norm: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """Maps per-unit predictions back to image space ``(B, N, P)`` using each unit's statistics."""
    from coma.models.layers.units import image_to_units
    target = image_to_units(norm, model.unit).flatten(2)
    if model.pixel_loss.norm_pix:
        mean, std = target.mean(-1, keepdim=True), (target.var(-1, keepdim=True) + 1e-6).sqrt()
        pred = pred * std + mean
    return pred


@torch.no_grad()
def render(model, image_path: str, size: int, out: str, seed: int = 0) -> str:
    import cv2
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from coma.masking import complementary_masks
    from coma.models.layers.units import image_to_units, units_to_image
    img = cv2.imread(image_path)
    if img is None:
        raise IOError(f'cannot read image {image_path}')
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    data = model.data_preprocessor(dict(inputs=[torch.from_numpy(img.transpose(2, 0, 1).copy())]), False)
    x = data['inputs']
    grid = model.grid(x)
    mask, comp = complementary_masks(1, grid, model.mask_ratio, generator=torch.Generator().manual_seed(seed))
    pp = model.data_preprocessor
    to_rgb = lambda t: (t[0].permute(1, 2, 0) * pp.std.view(1, 1, 3) + pp.mean.view(1, 1, 3)).clamp(0, 255).byte().numpy()  # noqa: E731

    def view(m):
        units = image_to_units(x, model.unit).clone()
        units[m.flatten(1)] = -pp.mean.view(3, 1, 1) / pp.std.view(3, 1, 1)  # black where hidden
        return units_to_image(units, grid)

    def recon(backbone, decoder, m):
        pred = decoder.pixel_head(decoder(backbone.forward_masked(x, m), m))
        pred = unit_images(model, x, pred)
        units = image_to_units(x, model.unit).clone()
        shape = units.shape[2:]
        units[m.flatten(1)] = pred[m.flatten(1)].view(-1, *shape)  # keep the visible units
        return units_to_image(units, grid)

    seen = 100 * float((~mask).float().mean())
    panels = [('original', x), (f'M_t view ({seen:.0f}% visible)', view(mask)),
              ('M_t reconstruction', recon(model.backbone, model.decoder, mask))]
    if hasattr(model, 'frozen_backbone'):
        panels += [(f'M_{{t-1}} view (complement, {100 - seen:.0f}%)', view(comp)),
                   ('M_{t-1} reconstruction', recon(model.frozen_backbone, model.frozen_decoder, comp))]
    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.3))
    for ax, (title, t) in zip(np.atleast_1d(axes), panels):
        ax.imshow(to_rgb(t))  # the preprocessor made the input RGB (bgr_to_rgb=True)
        ax.set_title(title, fontsize=9)
        ax.axis('off')
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches='tight')
    plt.close(fig)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('checkpoint')
    p.add_argument('image')
    p.add_argument('--config')
    p.add_argument('--size', type=int, default=224)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default='work_dirs/reconstruction.png')
    args = p.parse_args(argv)
    out = render(load_model(args.checkpoint, args.config), args.image, args.size, args.out, args.seed)
    print(f'saved {out}')
    return out


if __name__ == '__main__':
    main()
