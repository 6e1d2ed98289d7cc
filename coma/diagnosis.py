"""What a pre-trained DyViT checkpoint did to the network: a diagnosis of weights, attention and features.

:func:`diagnose` compares a trained DyViT with a fresh one built with the same seed and reports,
per block: the RMS of its linear weights against the fresh init, the scale (standard deviation) of
its fine and coarse attention logits, the entropy of both attentions (normalised by the log of the
number of keys: 1 = uniform), the mean gate weight of each group, and the share of the rows of both
relative-position tables that moved away from their init. Over the images it reports the effective
rank of the standardised pooled features (exp of the entropy of the normalised singular values;
1 = every image maps to one direction) and the mean pairwise cosine of the last-stage unit latents
of different images (the latent targets of CoMA; 1 = collapsed).
"""
from typing import Dict, List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .models.backbones.dyvit import DyViT
from .models.layers.dm_msa import DMMSA, CoarseWindows


def effective_rank(features: torch.Tensor) -> float:
    """``exp(entropy)`` of the normalised singular values of z-scored ``(N, C)`` features."""
    z = (features - features.mean(0)) / (features.std(0) + 1e-6)
    s = torch.linalg.svdvals(z.double())
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def mean_pairwise_cosine(latents: torch.Tensor) -> float:
    """Mean cosine between the ``(N, C)`` rows of different samples (diagonal excluded)."""
    x = nn.functional.normalize(latents.double(), dim=-1)
    sim = x @ x.T
    n = x.shape[0]
    return float((sim.sum() - sim.diagonal().sum()) / (n * (n - 1)))


@torch.no_grad()
def attention_stats(attn: DMMSA, x: torch.Tensor, coords: torch.Tensor, windows: CoarseWindows,
                    shifted: bool) -> Dict[str, float]:
    """Logit scale, normalised entropy and gate weight of both head groups of one DM-MSA call, from the
    call's arguments (:meth:`DMMSA.forward`: ``x`` the ``(B, U, T, C)`` tokens of the units at ``coords``)."""
    b, u, t, _ = x.shape
    d, hf, hc = attn.head_dim, attn.fine_heads, attn.coarse_heads
    pooled = x.mean(2)  # B, U, C
    gate = attn.gate(pooled).softmax(-1)
    q = attn.q(x).view(b, u, t, -1, d)
    stats = dict(gate_fine=float(gate[..., 0].mean()), gate_coarse=float(gate[..., 1].mean()))
    if attn.fine_attends:
        k = attn.kv_fine(x).view(b, u, t, 2, hf, d)[:, :, :, 0]
        logits = torch.einsum('buqhd,bukhd->buhqk', q[:, :, :, :hf], k) * d ** -0.5
        stats.update(_logit_stats(logits + attn.fine_bias_table[attn.fine_rel].permute(2, 0, 1), 'fine'))
    kc = attn.kv_coarse(pooled).view(b, u, 2, hc, d)[:, :, 0]  # B, U, hc, d
    qc = q[:, :, :, -hc:].reshape(b, u * t, hc, d)
    logits = torch.einsum('bqhd,bkhd->bhqk', qc, kc) * d ** -0.5  # B, hc, U*T, U
    table = F.pad(attn.coarse_bias_table, (0, 0, 0, 1), value=float('-inf'))
    bias = table[windows.rel_index(coords, shifted)].permute(0, 3, 1, 2).repeat_interleave(t, dim=2)
    stats.update(_logit_stats(logits + bias, 'coarse'))
    return stats


def _logit_stats(logits: torch.Tensor, group: str) -> Dict[str, float]:
    finite = torch.isfinite(logits)
    keys = finite.sum(-1).clamp(min=2).double()
    p = logits.softmax(-1).double()
    entropy = -(p * p.clamp(min=1e-30).log()).sum(-1) / keys.log()
    return {f'logit_std_{group}': float(logits[finite].std()), f'entropy_{group}': float(entropy.mean())}


def _block_rms(block: nn.Module) -> float:
    weights = [m.weight for m in block.modules() if isinstance(m, nn.Linear)]
    return float(torch.cat([w.detach().flatten() for w in weights]).square().mean().sqrt())


def _moved(a: torch.Tensor, b: torch.Tensor) -> float:
    """Share of table rows that differ from the init."""
    return float(((a - b).abs().amax(-1) > 0).double().mean())


@torch.no_grad()
def diagnose(model: DyViT, fresh: DyViT, images: torch.Tensor, mask_ratio: float = 0.6) -> Tuple[List[Dict], Dict]:
    """Per-block statistics and whole-model statistics of ``model`` against ``fresh``.

    Args:
        model: the trained backbone.
        fresh: the same architecture at its initialisation (same seed).
        images: ``(N, 3, H, W)`` normalised images, H and W multiples of 32.
        mask_ratio: ratio of the random masks for the latent-collapse measure.

    Returns:
        ``(blocks, summary)``: one dict per block (stage, index, weight RMS ratio, attention
        statistics, moved table rows) and ``effective_rank``, ``fresh_effective_rank``,
        ``latent_cosine``, ``fresh_latent_cosine``.
    """
    model.eval(), fresh.eval()
    window = getattr(model, 'coarse_window', 7)
    if max(images.shape[2], images.shape[3]) > window * DyViT.unit:
        raise ValueError(f'diagnose reads the attention of one coarse window: images of at most '
                         f'{window * DyViT.unit} px a side, got {tuple(images.shape[2:])}')
    captured: Dict[int, tuple] = {}  # (x, coords, windows, shifted) of each call of the plain modules
    hooks = []
    attns = [blk.attn for stage in model.stages for blk in stage.blocks]
    def keep_input(i: int):
        def hook(module, args, output) -> None:  # returns None: the output stays as it is
            captured.setdefault(i, (args[0].detach(), *args[1:]))
        return hook
    for i, attn in enumerate(attns):
        hooks.append(attn.register_forward_hook(keep_input(i)))
    fast = model.fast
    model.fast = False  # the plain modules, whose calls the hooks see
    try:
        pooled = model.forward_features(images).mean((2, 3))
    finally:
        model.fast = fast
        for h in hooks:
            h.remove()
    blocks = []
    fresh_blocks = [blk for stage in fresh.stages for blk in stage.blocks]
    j = 0
    for s, stage in enumerate(model.stages):
        for b, blk in enumerate(stage.blocks):
            ref = fresh_blocks[j]
            row = dict(stage=s, block=b, weight_rms_ratio=_block_rms(blk) / _block_rms(ref),
                       coarse_rows_moved=_moved(blk.attn.coarse_bias_table, ref.attn.coarse_bias_table))
            if blk.attn.fine_attends:
                row['fine_rows_moved'] = _moved(blk.attn.fine_bias_table, ref.attn.fine_bias_table)
            row.update(attention_stats(blk.attn, *captured[j]))
            blocks.append(row)
            j += 1
    summary = dict(images=int(images.shape[0]))
    fresh_pooled = fresh(images)[-1].mean((2, 3))
    summary['effective_rank'] = effective_rank(pooled)
    summary['fresh_effective_rank'] = effective_rank(fresh_pooled)
    g = torch.Generator().manual_seed(0)
    grid = (images.shape[2] // DyViT.unit, images.shape[3] // DyViT.unit)
    units = grid[0] * grid[1]
    keep = max(1, units - int(round(mask_ratio * units)))
    mask = torch.ones(images.shape[0], units, dtype=torch.bool)
    mask[:, torch.randperm(units, generator=g)[:keep]] = False  # the same units in every image
    mask = mask.view(-1, *grid)
    for name, net in (('latent_cosine', model), ('fresh_latent_cosine', fresh)):
        lat = net.forward_masked(images, mask, keep)  # N, keep, C
        # unit k of image i against unit k of image j: what the latent target tells images apart by
        summary[name] = sum(mean_pairwise_cosine(lat[:, k]) for k in range(keep)) / keep
    return blocks, summary


#: scikit-image's bundled colour photos (offline data) for the diagnosis when no folder is given.
SKIMAGE_PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket', 'immunohistochemistry', 'hubble_deep_field',
                  'retina', 'brick')
#: ImageNet normalisation, as in the pre-training data preprocessor (RGB).
MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


def load_image_batch(folder: 'str | None', count: int, size: int, seed: int = 0) -> torch.Tensor:
    """``(count, 3, size, size)`` normalised RGB crops: random crops of the images of ``folder``, or of
    scikit-image's photos when ``folder`` is None.

    Raises:
        FileNotFoundError: ``folder`` has no readable image, naming it.
        ValueError: ``size`` not a multiple of 32.
    """
    import numpy as np
    from PIL import Image
    if size % DyViT.unit:
        raise ValueError(f'image size {size} is not a multiple of {DyViT.unit}')
    if folder is None:
        from skimage import data
        sources = [np.asarray(getattr(data, name)()) for name in SKIMAGE_PHOTOS]
    else:
        import os
        names = sorted(f for f in os.listdir(folder) if f.lower().endswith(('.jpg', '.jpeg', '.png', '.bmp')))
        if not names:
            raise FileNotFoundError(f'{folder}: no .jpg/.jpeg/.png/.bmp image')
        sources = [np.asarray(Image.open(os.path.join(folder, n)).convert('RGB')) for n in names[:max(count, 1)]]
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(count):
        img = sources[i % len(sources)]
        img = np.stack([img] * 3, -1) if img.ndim == 2 else img[..., :3]
        h, w = img.shape[:2]
        side = int(rng.uniform(0.4, 1.0) * min(h, w))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = Image.fromarray(np.ascontiguousarray(img[y:y + side, x:x + side])).resize((size, size), Image.BILINEAR)
        crops.append(torch.from_numpy(np.asarray(crop, dtype=np.float32)).permute(2, 0, 1))
    batch = torch.stack(crops)
    return (batch - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def load_trained_dyvit(path: str, arch: 'str | None' = None, seed: int = 0) -> Tuple[DyViT, DyViT]:
    """The DyViT of a pre-training checkpoint (``backbone.*``) or converted backbone, and a fresh one
    built after ``torch.manual_seed(seed)`` (the init the pre-training started from, when it used
    that seed).

    Raises:
        KeyError: no architecture in the checkpoint and none given.
        ValueError: weights that do not fit the architecture, listed.
    """
    import copy

    from .engine.safe_load import safe_torch_load
    from .models.checkpoint import extract_state_dict
    ckpt = safe_torch_load(path, map_location='cpu')
    state = extract_state_dict(ckpt)
    if any(k.startswith('backbone.') for k in state):
        state = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    cfg = dict(type='DyViT', arch=arch) if arch else None
    meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    if cfg is None and isinstance(meta.get('backbone'), dict):
        cfg = dict(meta['backbone'])
    if cfg is None and meta.get('cfg'):
        from mmengine.config import Config
        cfg = dict(Config.fromstring(meta['cfg'], '.py').model.backbone)
    if cfg is None:
        raise KeyError(f'{path} carries no config; pass --arch')
    out_indices = tuple(i for i in range(4) if f'norm{i}.weight' in state) or (3,)
    torch.manual_seed(seed)
    fresh = DyViT(cfg['arch'], coarse_window=cfg.get('coarse_window', 7), out_indices=out_indices)
    model = copy.deepcopy(fresh)
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    shapes = [f'{k} {tuple(v.shape)} vs {tuple(own[k].shape)}' for k, v in state.items() if k in own and v.shape != own[k].shape]
    if missing or unexpected or shapes:
        raise ValueError(f'{path}: does not fit DyViT {cfg["arch"]}: missing {missing[:10]}, unexpected '
                         f'{unexpected[:10]}, shapes {shapes[:10]}')
    model.load_state_dict(state)
    return model, fresh


def plot_diagnosis(blocks: List[Dict], summary: Dict, path: str) -> None:
    """Four panels per block: weight RMS / init, logit scale, entropy, gate weights."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    idx = list(range(len(blocks)))
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.2))
    panels = [('weight RMS / init', ['weight_rms_ratio']), ('attention-logit std', ['logit_std_fine', 'logit_std_coarse']),
              ('entropy / log(keys)', ['entropy_fine', 'entropy_coarse']), ('gate weight', ['gate_fine', 'gate_coarse'])]
    for ax, (title, keys) in zip(axes, panels):
        for key in keys:
            ax.plot(idx, [b.get(key, float('nan')) for b in blocks], marker='o', label=key)
        ax.set_title(title)
        ax.set_xlabel('block')
        ax.legend(fontsize=7)
    fig.suptitle(f"effective rank {summary['effective_rank']:.2f} (init {summary['fresh_effective_rank']:.2f}); "
                 f"latent cosine {summary['latent_cosine']:.3f} (init {summary['fresh_latent_cosine']:.3f})")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


@torch.no_grad()
def spatial_variation(model: DyViT, images: torch.Tensor) -> List[float]:
    """Per output map: the mean over images and channels of the standard deviation over the
    positions of one image, divided by the standard deviation over everything. About 0.7 for a
    random DyViT; near 0 when every position of an image carries the same vector (features that
    say what the image is, not where things are: useless to a detector)."""
    model.eval()
    return [float(m.std((2, 3)).mean() / m.std()) for m in model(images)]


def load_coco_label_maps(root: str, split: str = 'train', scale: Tuple[int, int] = (320, 256),
                         limit: 'int | None' = None) -> Tuple[torch.Tensor, torch.Tensor, List[str]]:
    """The images of a COCO-format folder, resized as the demo detector sees them, and their
    per-pixel category maps (0 = background, ``k`` = the k-th category, 255 = padding or crowd).

    Images are resized to fit ``scale`` (w, h) keeping their ratio, as mmdet's ``Resize``, then
    padded to ``scale`` (a multiple of 32 on each side).

    Returns:
        ``(images (N, 3, h, w) normalised RGB, labels (N, h, w) long, category names)``.

    Raises:
        FileNotFoundError: the annotation file or an image it names is missing, naming it.
    """
    import json
    import os

    import numpy as np
    from PIL import Image
    from pycocotools import mask as mask_utils
    ann_file = os.path.join(root, 'annotations', f'instances_{split}2017.json')
    if not os.path.exists(ann_file):
        raise FileNotFoundError(f'{ann_file}: no such annotation file (a COCO-format folder has '
                                f'annotations/instances_{{train,val}}2017.json)')
    with open(ann_file) as f:
        coco = json.load(f)
    cats = sorted(c['id'] for c in coco['categories'])
    names = [c['name'] for c in sorted(coco['categories'], key=lambda c: c['id'])]
    by_image: Dict[int, List[Dict]] = {}
    for ann in coco['annotations']:
        by_image.setdefault(ann['image_id'], []).append(ann)
    w_out, h_out = scale
    images, labels = [], []
    for info in coco['images'][:limit]:
        path = os.path.join(root, f'{split}2017', info['file_name'])
        if not os.path.exists(path):
            raise FileNotFoundError(f'{path}: named by {ann_file} but missing')
        img = Image.open(path).convert('RGB')
        h, w = info['height'], info['width']
        label = np.zeros((h, w), np.uint8)
        for ann in by_image.get(info['id'], []):
            segm = ann['segmentation']
            if isinstance(segm, list):
                rle = mask_utils.merge(mask_utils.frPyObjects(segm, h, w))
            elif isinstance(segm.get('counts'), list):
                rle = mask_utils.frPyObjects(segm, h, w)
            else:
                rle = segm
            m = mask_utils.decode(rle).astype(bool)
            label[m] = 255 if ann.get('iscrowd') else cats.index(ann['category_id']) + 1
        r = min(w_out / w, h_out / h)
        size = (int(round(w * r)), int(round(h * r)))
        img = np.asarray(img.resize(size, Image.BILINEAR), np.float32)
        label = np.asarray(Image.fromarray(label).resize(size, Image.NEAREST))
        canvas = np.zeros((h_out, w_out, 3), np.float32)
        canvas[:size[1], :size[0]] = img
        full = np.full((h_out, w_out), 255, np.uint8)
        full[:size[1], :size[0]] = label
        images.append(torch.from_numpy(canvas).permute(2, 0, 1))
        labels.append(torch.from_numpy(full.astype(np.int64)))
    batch = (torch.stack(images) - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    return batch, torch.stack(labels), ['background'] + names


@torch.no_grad()
def dense_features(model: DyViT, images: torch.Tensor, stride: int = 8, batch: int = 8,
                   stages: Tuple[int, ...] = (0, 1, 2, 3)) -> torch.Tensor:
    """``model``'s output maps of ``stages`` resized (bilinear) to ``1/stride`` and concatenated (all of
    them: what an FPN reads), as ``(N, sum C, H/stride, W/stride)``."""
    model.eval()
    size = (images.shape[2] // stride, images.shape[3] // stride)
    out = []
    for chunk in images.split(batch):
        maps = model(chunk)
        out.append(torch.cat([nn.functional.interpolate(m, size=size, mode='bilinear', align_corners=False)
                              for i, m in enumerate(maps) if model.out_indices[i] in stages], 1))
    return torch.cat(out)


def dense_probe(model: DyViT, train: Tuple[torch.Tensor, torch.Tensor], val: Tuple[torch.Tensor, torch.Tensor],
                num_classes: int, stride: int = 8, steps: int = 300, seed: int = 0,
                stages: Tuple[int, ...] = (0, 1, 2, 3)) -> Dict[str, float]:
    """A linear per-location classifier on the frozen, concatenated output maps (a frozen stand-in for
    the detector's first layers): does the backbone keep where the objects are and what they are?

    Features are z-scored with the train statistics; the classifier is trained full-batch with
    Adam (lr 0.05, ``steps`` steps, class-balanced cross-entropy); labels are the centre pixel of
    each ``stride`` cell, 255 ignored.

    Returns:
        ``miou`` (mean IoU over the classes, %), ``fg_iou`` (foreground vs background, %), ``acc`` (%).
    """
    def cells(images, labels):
        feats = dense_features(model, images, stride, stages=stages)
        lab = labels[:, stride // 2::stride, stride // 2::stride][:, :feats.shape[2], :feats.shape[3]]
        x = feats.permute(0, 2, 3, 1).reshape(-1, feats.shape[1])
        y = lab.reshape(-1)
        keep = y != 255
        return x[keep], y[keep]
    x_tr, y_tr = cells(*train)
    x_va, y_va = cells(*val)
    mean, std = x_tr.mean(0), x_tr.std(0) + 1e-6
    x_tr, x_va = (x_tr - mean) / std, (x_va - mean) / std
    counts = torch.bincount(y_tr, minlength=num_classes).float()
    weight = counts.sum() / (num_classes * counts.clamp(min=1))
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(x_tr.shape[1], num_classes)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * 0.01)
        lin.bias.zero_()
    opt = torch.optim.Adam(lin.parameters(), lr=0.05)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad()
            nn.functional.cross_entropy(lin(x_tr), y_tr, weight=weight).backward()
            opt.step()
    with torch.no_grad():
        pred = lin(x_va).argmax(-1)
    ious = []
    for c in range(num_classes):
        inter = ((pred == c) & (y_va == c)).sum().item()
        union = ((pred == c) | (y_va == c)).sum().item()
        if union:
            ious.append(inter / union)
    fg_p, fg_t = pred > 0, y_va > 0
    fg_iou = (fg_p & fg_t).sum().item() / max(1, (fg_p | fg_t).sum().item())
    return dict(miou=100 * sum(ious) / len(ious), fg_iou=100 * fg_iou, acc=100 * float((pred == y_va).float().mean()))


def downstream_dyvit(path: 'str | None', arch: str = 'nano', seed: int = 0) -> DyViT:
    """A DyViT with all four outputs, initialised as a downstream config does: ``torch.manual_seed(seed)``
    then the converted or pre-training checkpoint at ``path`` (None: the random init)."""
    from .models.checkpoint import load_backbone_checkpoint
    torch.manual_seed(seed)
    model = DyViT(arch, out_indices=(0, 1, 2, 3))
    if path is not None:
        load_backbone_checkpoint(model, path)  # a pre-training checkpoint's backbone.* keys are found by themselves
    return model
