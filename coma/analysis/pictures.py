"""Pictures: the paper's Figure 2 (per-unit masking frequency, random vs complementary) and a
pre-trained model's reconstructions (``tools/visualize_masks.py``, ``tools/visualize_reconstruction.py``).
"""
import os
from typing import Optional, Sequence, Tuple

import numpy as np
import torch


def mask_frequencies(iters: int, ratio: float, grid: Tuple[int, int], seed: int = 0):
    """How often each unit is hidden over ``iters`` draws: random (MAE) masks, and complementary
    (CoMA) masks with both branches counted (every unit exactly once per draw).

    Returns:
        (random counts, complementary counts), each ``grid``-shaped.
    """
    from coma.masking import complementary_masks, random_masks
    g = torch.Generator().manual_seed(seed)
    rand = torch.zeros(grid)
    comp = torch.zeros(grid)
    for _ in range(iters):
        rand += random_masks(1, grid, ratio, generator=g)[0].float()
        m, c = complementary_masks(1, grid, ratio, generator=g)
        comp += (m.float() + c.float())[0]
    return rand, comp


def plot_mask_frequencies(iters: int, ratio: float, grid: Sequence[int], out: str):
    """Draws :func:`mask_frequencies` side by side into ``out`` (PNG); returns the counts."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rand, comp = mask_frequencies(iters, ratio, tuple(grid))
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, counts, title in ((axes[0], rand, 'Random masking (MAE)'),
                              (axes[1], comp, 'Complementary masking (CoMA, both branches)')):
        freq = counts / iters
        im = ax.imshow(freq, cmap='Reds', vmin=0, vmax=1)
        ax.set_title(f'{title}\nmin {freq.min():.3f}  max {freq.max():.3f}  std {freq.std():.3f}', fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(f'Masking frequency per 32-px unit over {iters} iterations, ratio {ratio}')
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches='tight')
    print(f'random: per-unit masking frequency {float(rand.min()) / iters:.3f}-{float(rand.max()) / iters:.3f}; '
          f'complementary: every unit {float(comp.min()) / iters:.3f}-{float(comp.max()) / iters:.3f}; '
          f'saved {out}')
    return rand, comp



def load_pretrain_model(checkpoint: str, config: Optional[str] = None):
    """The CoMA/MAE model of a pre-training checkpoint (its config from the checkpoint unless
    ``config``), loaded strictly, in eval mode."""
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
    return model.head.to_pixels(pred, image_to_units(norm, model.unit).flatten(2))


@torch.no_grad()
def render_reconstruction(model, image_path: str, size: int, out: str, seed: int = 0) -> str:
    """Original, M_t's view and reconstruction (and M_{t-1}'s for CoMA) of one image, as one PNG."""
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
