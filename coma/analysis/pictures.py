"""Pictures: the paper's Figure 2 (per-unit masking frequency: MAE, CoMA's two branches, M_t's own
mask) and a pre-trained model's reconstructions (``tools/visualize_masks.py``, ``tools/visualize_reconstruction.py``).
"""
import os
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch


#: The maps of :func:`mask_frequencies`, in plotting order, with their titles.
MASK_MAPS = (('mae', 'MAE: the encoder\'s mask'),
             ('coma_both', 'CoMA: both branches counted\n(every unit once per step, by construction)'),
             ('coma_iid', "CoMA: M_t's own mask (drawn afresh each step)"),
             ('coma_alternate', "CoMAAlternate: M_t's own mask (pairs of epochs)"))


def mask_frequencies(iters: int, ratio: float, grid: Tuple[int, int], seed: int = 0) -> Dict[str, torch.Tensor]:
    """How often each unit of one image (``sample_idx`` 0) is hidden over ``iters`` training steps,
    drawn by the models themselves (``mask_seed=seed``; one step per epoch, as for an image seen once
    an epoch). Keys (:data:`MASK_MAPS`): ``'mae'``, MAE's mask; ``'coma_both'``, CoMA's mask and its
    complement counted together (every unit exactly once per step); ``'coma_iid'`` and
    ``'coma_alternate'``, the adaptive model M_t's own mask in CoMA (drawn afresh every step) and in
    its variant ``CoMAAlternate`` (pairs of epochs): what M_t's gradient sees.

    Returns:
        name -> ``grid``-shaped counts.
    """
    import coma  # noqa: F401  (registers the models)
    from mmengine.registry import MODELS
    from mmengine.structures import BaseDataElement
    from coma.masking import complementary_masks
    common = dict(backbone=dict(type='DyViT', arch='nano', out_indices=(3,)), mask_ratio=ratio, mask_seed=seed,
                  decoder=dict(type='CoMADecoder', embed_dim=32, depth=1, num_heads=2))
    models = dict(mae=MODELS.build(dict(type='MAE', **common)),
                  coma_iid=MODELS.build(dict(type='CoMA', **common)),
                  coma_alternate=MODELS.build(dict(type='CoMAAlternate', **common)))
    unit = models['mae'].unit
    image = torch.zeros(1, 3, grid[0] * unit, grid[1] * unit)
    sample = [BaseDataElement(metainfo=dict(sample_idx=0))]
    counts = {name: torch.zeros(grid) for name, _ in MASK_MAPS}
    for model in models.values():
        model.train()
    for step in range(iters):
        models['coma_alternate'].set_epoch(step)
        for name, model in models.items():
            mask, complement = complementary_masks(1, grid, ratio, noise=model.mask_noise(image, sample))
            counts[name] += mask[0].float()
            if name == 'coma_iid':
                counts['coma_both'] += mask[0].float() + complement[0].float()  # branches hiding the unit
    return counts


def plot_mask_frequencies(iters: int, ratio: float, grid: Sequence[int], out: str) -> Dict[str, torch.Tensor]:
    """Draws :func:`mask_frequencies` side by side into ``out`` (PNG); returns the counts."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    counts = mask_frequencies(iters, ratio, tuple(grid))
    fig, axes = plt.subplots(1, len(MASK_MAPS), figsize=(4.4 * len(MASK_MAPS), 4.4))
    p = counts['mae'].sum().item() / (iters * counts['mae'].numel())  # the hidden fraction, k / N
    for ax, (name, title) in zip(axes, MASK_MAPS):
        freq = counts[name] / iters
        # one narrow scale around k / N for the per-branch maps, so their spread shows
        scale = (dict(cmap='Reds', vmin=0, vmax=1) if name == 'coma_both'
                 else dict(cmap='RdBu_r', vmin=p - 0.05, vmax=p + 0.05))
        im = ax.imshow(freq, **scale)
        ax.set_title(f'{title}\nmin {freq.min():.3f}  max {freq.max():.3f}  std {freq.std():.3f}', fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(f'How often each 32-px unit of one image is hidden over {iters} steps (one an epoch), ratio {ratio}')
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches='tight')
    for name, _ in MASK_MAPS:
        freq = counts[name] / iters
        print(f'{name}: hidden {float(freq.min()):.3f}-{float(freq.max()):.3f} of the steps (std {float(freq.std()):.3f})')
    print(f'saved {out}')
    return counts


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
