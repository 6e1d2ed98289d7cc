"""MAE and CoMA pre-training algorithms (mmengine ``BaseModel``s).

Paper: Li et al., "CoMA: Complementary Masking and Hierarchical Dynamic Multi-Window
Self-Attention in a Unified Pre-training Framework" (Figure 3); our reading is SPEC section 2
(docs/design.md).

* :class:`MAE` is the baseline: random masks, one model, ``loss_pix`` on the hidden units.
* :class:`CoMA` adds the complementary branch. The adaptive model M_t (``backbone`` +
  ``decoder``) sees the units that mask M keeps and reconstructs those it hides. The frozen
  evaluation model M_{t-1} (``frozen_backbone`` + ``frozen_decoder``) sees the complement: its
  encoder gives latent targets for exactly the units M_t had to reconstruct (``loss_lat``), and its
  decoder reconstructs the units M_t saw (``loss_eval``, logged only). After the forward pass,
  ``theta_{t-1} <- m * theta_{t-1} + (1 - m) * theta_t`` with the pre-step weights, so with
  ``m = 0`` M_{t-1} holds exactly the previous step's weights at every iteration.
"""
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmengine.dist import get_rank
from mmengine.model import BaseModel
from mmengine.registry import MODELS

from ...masking import complementary_masks, random_masks
from ..layers.units import image_to_units
from ..losses.reconstruction import LatentPredictionLoss, PixelReconstructionLoss
from ..utils.frozen import frozen_copy, momentum_update

#: Logged values that are not part of the optimised loss.
MONITOR_ONLY = ('loss_eval',)


def _rows(x: torch.Tensor, select: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` ``(B, N, D)`` where ``select`` ``(B, N)`` is True, as ``(B, K, D)`` (same K per sample)."""
    return x[select].view(x.shape[0], -1, x.shape[-1])


class MAE(BaseModel):
    """Masked autoencoder baseline over mask units.

    Args:
        backbone: config of an encoder with ``forward_masked``, ``unit`` and ``unit_dim``
            (``DyViT`` or ``ViT``).
        decoder: config of the decoder (``CoMADecoder``); ``in_dim`` and ``unit`` are filled in.
        mask_ratio: hidden fraction of the units.
        norm_pix: MAE's per-unit normalised pixel targets.
        mask_seed: masks of training step ``s`` on rank ``r`` come from a generator seeded with
            ``(mask_seed, s, r)``; the step count is saved in checkpoints, so a resumed run draws
            exactly the masks an uninterrupted one would.
        data_preprocessor: mmengine data preprocessor config.
        init_cfg: mmengine init config.
    """

    def __init__(self, backbone: Dict, decoder: Dict, mask_ratio: float = 0.75, norm_pix: bool = True,
                 mask_seed: int = 0, data_preprocessor: Optional[Dict] = None,
                 init_cfg: Optional[Dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.unit = self.backbone.unit
        self.decoder = MODELS.build(self._decoder_cfg(decoder))
        self.mask_ratio = mask_ratio
        self.mask_seed = mask_seed
        self.pixel_loss = PixelReconstructionLoss(norm_pix)
        self.register_buffer('mask_step', torch.zeros((), dtype=torch.long))

    def _decoder_cfg(self, decoder: Dict) -> Dict:
        return dict(dict(in_dim=self.backbone.unit_dim, unit=self.unit), **decoder)

    def grid(self, inputs: torch.Tensor) -> Tuple[int, int]:
        """Unit grid of a batch; the image size must be a multiple of the unit."""
        h, w = inputs.shape[-2:]
        if h % self.unit or w % self.unit:
            raise ValueError(f'pre-training images must be multiples of the {self.unit}-px unit, got {h}x{w}')
        return h // self.unit, w // self.unit

    def mask_noise(self, inputs: torch.Tensor, data_samples: Optional[List] = None) -> torch.Tensor:
        """The uniform noise that ranks each sample's units (lowest hidden), ``(B, gh*gw)``.

        In training it is reproducible: sample ``i`` of step ``s`` draws from a generator seeded with
        ``(mask_seed, s, sample_idx)`` when the data samples carry ``sample_idx`` (then the masks do
        not depend on how the batch is split over processes), else ``(mask_seed, s, rank)``. The
        step count is a checkpointed buffer, so a resumed run draws the masks an uninterrupted one
        would.
        """
        b = inputs.shape[0]
        n = self.grid(inputs)[0] * self.grid(inputs)[1]
        if not self.training:
            return torch.rand(b, n, device=inputs.device)
        step = int(self.mask_step)
        self.mask_step += 1
        base = (self.mask_seed * 1_000_003 + step) * 1_000_033
        ids = [s.metainfo.get('sample_idx') for s in data_samples] if data_samples else []
        if ids and all(i is not None for i in ids):
            rows = [torch.rand(n, generator=torch.Generator().manual_seed(base + int(i))) for i in ids]
            return torch.stack(rows).to(inputs.device)
        generator = torch.Generator(device=inputs.device).manual_seed(base + 7919 * get_rank())
        return torch.rand(b, n, generator=generator, device=inputs.device)

    def sample_masks(self, inputs: torch.Tensor, data_samples: Optional[List] = None) -> torch.Tensor:
        """M_t's random masks ``(B, gh, gw)``, True = hidden."""
        return random_masks(inputs.shape[0], self.grid(inputs), self.mask_ratio,
                            noise=self.mask_noise(inputs, data_samples))

    def reconstruct(self, inputs: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """M_t's forward: decoded tokens ``(B, N, D)`` and the unit pixel targets ``(B, N, P)``."""
        decoded = self.decoder(self.backbone.forward_masked(inputs, mask), mask)
        return decoded, image_to_units(inputs, self.unit).flatten(2)

    def loss(self, inputs: torch.Tensor, data_samples: Optional[List] = None) -> Dict[str, torch.Tensor]:
        """``loss_pix`` on the hidden units."""
        mask = self.sample_masks(inputs, data_samples)
        decoded, target = self.reconstruct(inputs, mask)
        hidden = mask.flatten(1)
        return dict(loss_pix=self.pixel_loss(self.decoder.pixel_head(_rows(decoded, hidden)), _rows(target, hidden)))

    def parse_losses(self, losses: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """As mmengine's, but values in :data:`MONITOR_ONLY` are logged without entering the sum."""
        monitored = {k: losses.pop(k) for k in MONITOR_ONLY if k in losses}
        loss, log_vars = super().parse_losses(losses)
        for key, value in monitored.items():
            log_vars[key] = value.detach().mean()
        return loss, log_vars

    @torch.no_grad()
    def predict_pixels(self, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """M_t's reconstruction of every unit, ``(B, N, P)``, in normalised-unit space if ``norm_pix``."""
        decoded, _ = self.reconstruct(inputs, mask)
        return self.decoder.pixel_head(decoded)

    def forward(self, inputs: torch.Tensor, data_samples: Optional[List] = None,
                mode: str = 'tensor') -> Union[Dict[str, torch.Tensor], torch.Tensor]:
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode in ('tensor', 'predict'):
            return self.predict_pixels(inputs, self.sample_masks(inputs))
        raise RuntimeError(f'{type(self).__name__}: invalid mode "{mode}"; use loss, predict or tensor')


class CoMA(MAE):
    """Complementary masked autoencoder with an adaptive M_t and a frozen evaluation M_{t-1}.

    Args:
        backbone: as in :class:`MAE`.
        decoder: as in :class:`MAE`; ``latent_dim`` is filled in.
        mask_ratio: hidden fraction of M_t's mask (SPEC default 0.6).
        lambda_lat: weight of ``loss_lat`` (0 logs it without optimising it).
        momentum: m of the M_{t-1} update, in [0, 1); 0 = exact previous-step copy.
        norm_pix: per-unit normalised pixel targets.
        latent_loss: ``'cosine'`` or ``'smooth_l1'``.
        mask_seed: as in :class:`MAE`.
        data_preprocessor: mmengine data preprocessor config.
        init_cfg: mmengine init config.
    """

    def __init__(self, backbone: Dict, decoder: Dict, mask_ratio: float = 0.6, lambda_lat: float = 1.0,
                 momentum: float = 0.0, norm_pix: bool = True, latent_loss: str = 'cosine', mask_seed: int = 0,
                 data_preprocessor: Optional[Dict] = None, init_cfg: Optional[Dict] = None) -> None:
        super().__init__(backbone, decoder, mask_ratio, norm_pix, mask_seed, data_preprocessor, init_cfg)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f'CoMA: momentum must be in [0, 1), got {momentum}')
        if lambda_lat < 0:
            raise ValueError(f'CoMA: lambda_lat must be >= 0, got {lambda_lat}')
        self.lambda_lat, self.momentum = lambda_lat, momentum
        self.latent_loss = LatentPredictionLoss(latent_loss)
        self.sync_frozen()

    def _decoder_cfg(self, decoder: Dict) -> Dict:
        return dict(dict(in_dim=self.backbone.unit_dim, unit=self.unit, latent_dim=self.backbone.unit_dim), **decoder)

    def sync_frozen(self) -> None:
        """(Re)creates M_{t-1} as an exact frozen copy of M_t (e.g. after loading weights into M_t)."""
        self.frozen_backbone = frozen_copy(self.backbone)
        self.frozen_decoder = frozen_copy(self.decoder)

    def init_weights(self) -> None:
        super().init_weights()
        self.sync_frozen()

    def train(self, mode: bool = True) -> 'CoMA':
        super().train(mode)
        self.frozen_backbone.eval()
        self.frozen_decoder.eval()
        return self

    @torch.no_grad()
    def update_frozen(self) -> None:
        """``theta_{t-1} <- m * theta_{t-1} + (1 - m) * theta_t`` (called once per training forward)."""
        momentum_update(self.frozen_backbone, self.backbone, self.momentum)
        momentum_update(self.frozen_decoder, self.decoder, self.momentum)

    def loss(self, inputs: torch.Tensor, data_samples: Optional[List] = None) -> Dict[str, torch.Tensor]:
        """``loss_pix`` and ``loss_lat`` (optimised) and ``loss_eval`` (logged)."""
        mask, complement = complementary_masks(inputs.shape[0], self.grid(inputs), self.mask_ratio,
                                               noise=self.mask_noise(inputs, data_samples))
        hidden, seen = mask.flatten(1), complement.flatten(1)
        decoded, target = self.reconstruct(inputs, mask)
        decoded_hidden = _rows(decoded, hidden)
        losses = dict(loss_pix=self.pixel_loss(self.decoder.pixel_head(decoded_hidden), _rows(target, hidden)))
        with torch.no_grad():
            # M_{t-1} sees exactly the units M_t hid (row-major, the same order as decoded_hidden).
            latent_prev = self.frozen_backbone.forward_masked(inputs, complement)
            recon_prev = self.frozen_decoder.pixel_head(_rows(self.frozen_decoder(latent_prev, complement), seen))
            losses['loss_eval'] = self.pixel_loss(recon_prev, _rows(target, seen))
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.lambda_lat > 0):
            loss_lat = self.latent_loss(self.decoder.latent_head(decoded_hidden), latent_prev)
        losses['loss_lat'] = loss_lat * self.lambda_lat if self.lambda_lat > 0 else loss_lat.detach()
        if self.training:
            # M_{t-1} has been used for this step: it now takes M_t's pre-step weights.
            self.update_frozen()
        return losses

    def parse_losses(self, losses: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        if self.lambda_lat == 0 and 'loss_lat' in losses:  # logged, not optimised
            lat = losses.pop('loss_lat')
            loss, log_vars = super().parse_losses(losses)
            log_vars['loss_lat'] = lat.detach()
            return loss, log_vars
        return super().parse_losses(losses)
