"""CoMA, the complementary masked pre-training algorithm (an mmengine ``BaseModel``).

Paper: Li et al., "CoMA: Complementary Masking and Hierarchical Dynamic Multi-Window
Self-Attention in a Unified Pre-training Framework" (Figure 3); our reading is SPEC section 2
(docs/design.md). The adaptive model M_t (``backbone`` + ``decoder``) sees the units that mask M
keeps and reconstructs those it hides. The frozen evaluation model M_{t-1} (``frozen_backbone`` +
``frozen_decoder``) sees the complement: its encoder gives latent targets for exactly the units M_t
had to reconstruct (``loss_lat``), and its decoder reconstructs the units M_t saw (``loss_eval``,
logged only). After the forward pass, ``theta_{t-1} <- m * theta_{t-1} + (1 - m) * theta_t`` with the
pre-step weights, so with ``m = 0`` M_{t-1} holds exactly the previous step's weights at every iteration.
"""
import weakref
from typing import Dict, List, Optional, Union

import torch
from mmengine.registry import MODELS
from torch.optim.optimizer import register_optimizer_step_pre_hook

from ...masking import complementary_masks
from ..layers.units import visible_indices
from ..utils.frozen import frozen_copy, momentum_update
from .mae import MAE, _rows


def _before_step(owner: 'weakref.ref', optimizer: torch.optim.Optimizer) -> None:
    """Optimizer-step pre-hook: a CoMA model that ran a training forward since its last update, and
    whose encoder this optimizer trains, copies M_t (still at its pre-step weights) into M_{t-1}."""
    model = owner()
    if model is not None and model._frozen_pending and model.owns(optimizer):
        model.update_frozen()
        model._frozen_pending = False


class CoMA(MAE):
    """Complementary masked autoencoder with an adaptive M_t and a frozen evaluation M_{t-1}.

    Args:
        backbone: as in :class:`MAE`.
        decoder: as in :class:`MAE`; ``latent_dim`` is filled in.
        mask_ratio: hidden fraction of M_t's mask (SPEC default 0.6).
        momentum: m of the M_{t-1} update, in [0, 1); 0 = exact previous-step copy.
        head: as in :class:`MAE` (the pixel head, ``norm_pix``).
        latent_head: config of the latent head (``LatentPredictionHead``): ``loss_weight`` is lambda_lat
            (default 1.0; 0 logs ``loss_lat`` without optimising it) and ``loss`` the distance to
            M_{t-1}'s latents (default ``LatentPredictionLoss``: cosine, each channel of the targets
            standardised over the batch's scored units, so that a collapsed encoder scores nothing).
        mask_seed: as in :class:`MAE`.
        compile: as in :class:`MAE`; applies to both models.
        data_preprocessor: mmengine data preprocessor config.
        init_cfg: mmengine init config.

    ``loss_eval`` (M_{t-1}'s decoder on the units M_t saw) is monitoring only: it is computed at every
    :attr:`eval_interval`-th training step (and always outside training). With lambda_lat = 0 the
    frozen encoder runs only on those steps too (its latents are then monitoring only, logged as
    ``loss_lat``).
    """
    #: training steps between two ``loss_eval`` computations (monitoring only)
    eval_interval: int = 10

    def __init__(self, backbone: Dict, decoder: Dict, mask_ratio: float = 0.6, momentum: float = 0.0,
                 head: Optional[Dict] = None, latent_head: Optional[Dict] = None, mask_seed: int = 0,
                 compile: Union[bool, str, Dict] = False, data_preprocessor: Optional[Dict] = None,
                 init_cfg: Optional[Dict] = None) -> None:
        super().__init__(backbone, decoder, mask_ratio=mask_ratio, head=head, mask_seed=mask_seed, compile=compile,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f'CoMA: momentum must be in [0, 1), got {momentum}')
        self.momentum = momentum
        self.latent_head = MODELS.build(dict(dict(type='LatentPredictionHead'), **(latent_head or {})))
        if self.lambda_lat == 0:
            # not optimised: no gradient reaches it, so DDP must not wait for one
            self.decoder.latent_head.requires_grad_(False)
        self.sync_frozen()
        # M_{t-1} takes M_t's weights once per optimizer step, just before it (see _before_step).
        self._frozen_pending = False
        owner = weakref.ref(self)
        handle = register_optimizer_step_pre_hook(
            lambda optimizer, args, kwargs: _before_step(owner, optimizer))
        weakref.finalize(self, handle.remove)

    def _decoder_cfg(self, decoder: Dict) -> Dict:
        return dict(dict(in_dim=self.backbone.unit_dim, unit=self.unit, latent_dim=self.backbone.unit_dim), **decoder)

    @property
    def lambda_lat(self) -> float:
        """The weight of ``loss_lat`` (the latent head's ``loss_weight``)."""
        return self.latent_head.loss_weight

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # the epoch of the alternating schedule's variant (CoMAAlternate), which checkpoints of CoMA held
        if 'mask_epoch' not in self._buffers:
            state_dict.pop(prefix + 'mask_epoch', None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

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
        """``theta_{t-1} <- m * theta_{t-1} + (1 - m) * theta_t``.

        Called by the optimizer-step pre-hook, once per optimizer step that follows a training
        forward, with M_t's pre-step weights: with gradient accumulation every micro-batch of a step
        sees the same M_{t-1}, whoever calls ``train_step`` (mmengine's Runner, its DDP wrapper, a
        user's loop).
        """
        momentum_update(self.frozen_backbone, self.backbone, self.momentum)
        momentum_update(self.frozen_decoder, self.decoder, self.momentum)

    def loss(self, inputs: torch.Tensor, data_samples: Optional[List] = None) -> Dict[str, torch.Tensor]:
        """``loss_pix`` and ``loss_lat`` (optimised) and ``loss_eval`` (logged every ``eval_interval`` steps)."""
        mask, complement = complementary_masks(inputs.shape[0], self.grid(inputs), self.mask_ratio,
                                               noise=self.mask_noise(inputs, data_samples))
        visible = self.num_visible(inputs)
        hidden = mask[0].numel() - visible
        # Row-major indices of the units M_t hid (= those M_{t-1} sees) and of those M_t saw.
        ids_hidden, ids_seen = visible_indices(complement, hidden), visible_indices(mask, visible)
        decoded, units = self.reconstruct(inputs, mask, visible)
        decoded_hidden = _rows(decoded, ids_hidden)
        losses = dict(loss_pix=self.head.loss(self.decoder.pixel_head(decoded_hidden), _rows(units, ids_hidden)))
        # self._step was advanced by mask_noise: this step is self._step - 1
        monitor = not self.training or (self._step - 1) % self.eval_interval == 0
        if not self.latent_head.monitor_only or monitor:
            latent_prev = self.frozen_forward(inputs, complement, hidden, ids_seen, units, losses if monitor else None)
            losses['loss_lat'] = self.latent_head.loss(self.decoder.latent_head(decoded_hidden), latent_prev)
        if self.training:
            # M_{t-1} has been used: it takes M_t's weights right before the next optimizer step.
            self._frozen_pending = True
        return losses

    @torch.no_grad()
    def frozen_forward(self, inputs: torch.Tensor, complement: torch.Tensor, hidden: int, ids_seen: torch.Tensor,
                       units: torch.Tensor, losses: Optional[Dict[str, torch.Tensor]] = None) -> torch.Tensor:
        """M_{t-1}'s encoder on exactly the units M_t hid (row-major, the order of M_t's predictions):
        its latents ``(B, hidden, C)``, the targets of ``loss_lat``. With ``losses``, also M_{t-1}'s
        reconstruction of the units M_t saw, as ``losses['loss_eval']`` (monitoring)."""
        latent_prev = self.encode(self.frozen_backbone, inputs, complement, hidden)
        if losses is not None:
            decoded_prev = self.decode(self.frozen_decoder, latent_prev, complement)
            losses['loss_eval'] = self.head.loss(self.frozen_decoder.pixel_head(_rows(decoded_prev, ids_seen)),
                                                 _rows(units, ids_seen))
        return latent_prev

    def owns(self, optimizer: torch.optim.Optimizer) -> bool:
        """Whether ``optimizer`` trains this model's encoder."""
        key = next((p for p in self.backbone.parameters() if p.requires_grad), None)
        return key is not None and any(p is key for group in optimizer.param_groups for p in group['params'])
