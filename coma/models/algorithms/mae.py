"""MAE, the baseline pre-training algorithm (an mmengine ``BaseModel``), over mask units.

Paper: Li et al., "CoMA: Complementary Masking and Hierarchical Dynamic Multi-Window
Self-Attention in a Unified Pre-training Framework" (Figure 3); our reading is SPEC section 2
(docs/design.md). Random masks, one model, ``loss_pix`` on the hidden units; :class:`~.coma.CoMA`
builds on it.
"""
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.registry import MODELS

from ...masking import num_hidden, random_masks, step_noise
from ..layers.units import image_to_units, visible_indices
from ..utils.compile import compile_enabled, maybe_compiled

#: Logged values that are never part of the optimised loss (see :meth:`MAE.monitor_only`).
MONITOR_ONLY = ('loss_eval',)


def _rows(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Rows ``ids`` ``(B, K)`` of ``x`` ``(B, N, D)``, as ``(B, K, D)`` (a gather: static shape, no sync)."""
    return torch.gather(x, 1, ids[..., None].expand(-1, -1, x.shape[-1]))


class MAE(BaseModel):
    """Masked autoencoder baseline over mask units.

    Args:
        backbone: config of an encoder with ``forward_masked``, ``unit`` and ``unit_dim``
            (``DyViT`` or ``ViT``).
        decoder: config of the decoder (``CoMADecoder``); ``in_dim`` and ``unit`` are filled in.
        mask_ratio: hidden fraction of the units.
        head: config of the pixel head (default ``PixelReconstructionHead`` with ``norm_pix=True``, MAE's
            per-unit normalised pixel targets, and its mean squared error).
        mask_seed: the seed of the masks (:func:`coma.masking.step_noise`: sample ``i`` of step ``s``
            keyed by ``(mask_seed, s, sample_idx)``); the step count is saved in checkpoints, so a
            resumed run draws exactly the masks an uninterrupted one would.
        compile: compile the encoder's masked forward and the decoder with ``torch.compile``
            (``fullgraph=True, dynamic=False``): False, True, ``'cuda'`` (only when the inputs are
            on a GPU; the full recipes' default) or a dict of ``torch.compile`` options. The
            parameters, state dict and checkpoints are those of the plain modules.
        data_preprocessor: mmengine data preprocessor config.
        init_cfg: mmengine init config.
    """

    def __init__(self, backbone: Dict, decoder: Dict, mask_ratio: float = 0.75, head: Optional[Dict] = None,
                 mask_seed: int = 0, compile: Union[bool, str, Dict] = False, data_preprocessor: Optional[Dict] = None,
                 init_cfg: Optional[Dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.unit = self.backbone.unit
        self.decoder = MODELS.build(self._decoder_cfg(decoder))
        self.mask_ratio = mask_ratio
        self.mask_seed = mask_seed
        compile_enabled(compile, torch.device('cpu'))  # validates the value
        self.compile = compile
        self.head = MODELS.build(dict(dict(type='PixelReconstructionHead', norm_pix=True), **(head or {})))
        self.register_buffer('mask_step', torch.zeros((), dtype=torch.long))
        self._step: Optional[int] = 0  # host copy of mask_step (read again only when the buffer changed)
        self._step_version = self.mask_step._version  # the buffer's version counter when _step was taken

    def _decoder_cfg(self, decoder: Dict) -> Dict:
        return dict(dict(in_dim=self.backbone.unit_dim, unit=self.unit), **decoder)

    def grid(self, inputs: torch.Tensor) -> Tuple[int, int]:
        """Unit grid of a batch; the image size must be a multiple of the unit."""
        h, w = inputs.shape[-2:]
        if h % self.unit or w % self.unit:
            raise ValueError(f'pre-training images must be multiples of the {self.unit}-px unit, got {h}x{w}')
        return h // self.unit, w // self.unit

    def encode(self, encoder: nn.Module, inputs: torch.Tensor, mask: torch.Tensor, num_visible: int) -> torch.Tensor:
        """``encoder.forward_masked`` (compiled if configured): ``(B, num_visible, unit_dim)``."""
        return maybe_compiled(encoder, 'forward_masked', self.compile, inputs.device)(inputs, mask, num_visible)

    def decode(self, decoder: nn.Module, latents: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``decoder(latents, mask)`` (compiled if configured): ``(B, gh*gw, embed_dim)``."""
        return maybe_compiled(decoder, 'forward', self.compile, latents.device)(latents, mask)

    def num_visible(self, inputs: torch.Tensor) -> int:
        """Units M_t sees per sample: known from the ratio, so no mask is counted on the device."""
        grid = self.grid(inputs)
        return grid[0] * grid[1] - num_hidden(grid, self.mask_ratio)

    def next_mask_step(self) -> int:
        """The training step whose masks are drawn now; advances the checkpointed ``mask_step``.

        The count is read from the buffer once (after construction, a checkpoint load or a change of
        the buffer through ``fill_``) and then kept on the host, so no step waits for the device.
        """
        if self._step is None or self._step_version != self.mask_step._version:
            self._step = int(self.mask_step)
        step = self._step
        self._step += 1
        self.mask_step.fill_(self._step)
        self._step_version = self.mask_step._version
        return step

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._step = None  # read mask_step again

    def mask_noise(self, inputs: torch.Tensor, data_samples: Optional[List] = None) -> torch.Tensor:
        """The uniform noise that ranks each sample's units (lowest hidden), ``(B, gh*gw)``: in training
        :func:`coma.masking.step_noise` of the checkpointed step count (reproducible, and the same
        however the batch is split when the data samples carry ``sample_idx``), else fresh noise."""
        b, (gh, gw) = inputs.shape[0], self.grid(inputs)
        if not self.training:
            return torch.rand(b, gh * gw, device=inputs.device)
        return step_noise(self.mask_seed, self.next_mask_step(), data_samples, b, gh * gw, inputs.device)

    def sample_masks(self, inputs: torch.Tensor, data_samples: Optional[List] = None) -> torch.Tensor:
        """M_t's random masks ``(B, gh, gw)``, True = hidden."""
        return random_masks(inputs.shape[0], self.grid(inputs), self.mask_ratio,
                            noise=self.mask_noise(inputs, data_samples))

    def reconstruct(self, inputs: torch.Tensor, mask: torch.Tensor,
                    num_visible: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """M_t's forward: decoded tokens ``(B, N, D)`` and the units' pixels ``(B, N, P)``.

        ``num_visible`` (from the ratio) spares counting the mask; None counts and checks it.
        """
        if num_visible is None:
            num_visible = visible_indices(mask).shape[1]
        decoded = self.decode(self.decoder, self.encode(self.backbone, inputs, mask, num_visible), mask)
        return decoded, image_to_units(inputs, self.unit).flatten(2)

    def loss(self, inputs: torch.Tensor, data_samples: Optional[List] = None) -> Dict[str, torch.Tensor]:
        """``loss_pix`` on the hidden units."""
        mask = self.sample_masks(inputs, data_samples)
        visible = self.num_visible(inputs)
        decoded, target = self.reconstruct(inputs, mask, visible)
        hidden = visible_indices(~mask, mask[0].numel() - visible)  # B, K ascending
        return dict(loss_pix=self.head.loss(self.decoder.pixel_head(_rows(decoded, hidden)), _rows(target, hidden)))

    def monitor_only(self) -> Tuple[str, ...]:
        """The logged values that do not enter the optimised sum: :data:`MONITOR_ONLY`, and
        ``loss_lat`` when the latent head's weight is 0. The one place that decides it."""
        latent = getattr(self, 'latent_head', None)
        return MONITOR_ONLY + (('loss_lat',) if latent is not None and latent.monitor_only else ())

    def parse_losses(self, losses: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """As mmengine's, but the values of :meth:`monitor_only` are logged without entering the sum."""
        monitored = {k: losses.pop(k) for k in self.monitor_only() if k in losses}
        loss, log_vars = super().parse_losses(losses)
        for key, value in monitored.items():
            log_vars[key] = value.detach().mean()
        return loss, log_vars

    @torch.no_grad()
    def predict_pixels(self, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """M_t's reconstruction of every unit, ``(B, N, P)``, in normalised-unit space if ``norm_pix``
        (``self.head.to_pixels`` maps it back)."""
        decoded, _ = self.reconstruct(inputs, mask)
        return self.decoder.pixel_head(decoded)

    def forward(self, inputs: torch.Tensor, data_samples: Optional[List] = None,
                mode: str = 'tensor') -> Union[Dict[str, torch.Tensor], torch.Tensor]:
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode in ('tensor', 'predict'):
            return self.predict_pixels(inputs, self.sample_masks(inputs))
        raise RuntimeError(f'{type(self).__name__}: invalid mode "{mode}"; use loss, predict or tensor')
