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
import hashlib
import logging
import weakref
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.dist import get_rank
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from torch.optim.optimizer import register_optimizer_step_pre_hook

from ...masking import complementary_masks, num_hidden, random_masks
from ..layers.units import image_to_units, visible_indices
from ..utils.frozen import frozen_copy, momentum_update

#: Logged values that are never part of the optimised loss (see :meth:`MAE.monitor_only`).
MONITOR_ONLY = ('loss_eval',)

#: Compiled ``forward``/``forward_masked`` per module instance (weak keys: a copied or rebuilt
#: module compiles its own; nothing compiled is stored on the module, so state dicts, deep copies
#: and DDP see the plain module).
_COMPILED: 'weakref.WeakKeyDictionary[nn.Module, Dict[str, Callable]]' = weakref.WeakKeyDictionary()


def _before_step(owner: 'weakref.ref', optimizer: torch.optim.Optimizer) -> None:
    """Optimizer-step pre-hook: a CoMA model that ran a training forward since its last update, and
    whose encoder this optimizer trains, copies M_t (still at its pre-step weights) into M_{t-1}."""
    model = owner()
    if model is not None and model._frozen_pending and model.owns(optimizer):
        model.update_frozen()
        model._frozen_pending = False


def mask_seed_for(mask_seed: int, step: int, index: int) -> int:
    """A 63-bit generator seed for ``(mask_seed, step, index)``, collision-free in practice.

    A hash, not arithmetic: ``(seed * P + step) * Q + index`` repeats itself as soon as ``index``
    reaches ``Q`` (ImageNet's 1.28M samples pass any small prime).
    """
    digest = hashlib.blake2b(f'{mask_seed}/{step}/{index}'.encode(), digest_size=8).digest()
    return int.from_bytes(digest, 'little') >> 1


_MASK32 = 0xFFFFFFFF


def _fmix32(h: torch.Tensor) -> torch.Tensor:
    """MurmurHash3's 32-bit finaliser on int64 tensors holding values below 2**32 (products wrap; the
    low 32 bits are kept)."""
    h = h ^ (h >> 16)
    h = (h * 0x85EBCA6B) & _MASK32
    h = h ^ (h >> 13)
    h = (h * 0xC2B2AE35) & _MASK32
    return h ^ (h >> 16)


def hashed_uniform(keys: torch.Tensor, n: int) -> torch.Tensor:
    """``(B, n)`` float32 noise in [0, 1), a pure function of each row's 63-bit key and the column.

    Counter-based: computed where ``keys`` live (on the GPU, without a generator or a host draw), the
    same on every device and however the batch is split.

    Args:
        keys: ``(B,)`` int64 keys (from :func:`mask_seed_for`).
        n: columns (units per sample).

    Returns:
        ``(B, n)`` float32, 24 random bits each (as ``torch.rand``).
    """
    lo, hi = keys & _MASK32, (keys >> 32) & _MASK32
    col = torch.arange(n, device=keys.device, dtype=torch.int64)
    h = _fmix32((col * 0x9E3779B9 + 0x7F4A7C15) & _MASK32)[None, :]  # 1, n
    h = _fmix32(h ^ lo[:, None])
    h = _fmix32(((h + hi[:, None]) * 0x27D4EB2F) & _MASK32)
    return (h >> 8).to(torch.float32) * (1.0 / (1 << 24))


def keyed_noise(keys: List[int], n: int, device: torch.device) -> torch.Tensor:
    """:func:`hashed_uniform` for host keys: one small copy to ``device`` (pinned and non-blocking on a
    GPU: no wait), the noise drawn there."""
    keys = torch.tensor(keys, dtype=torch.int64)
    if device.type == 'cuda':
        keys = keys.pin_memory().to(device, non_blocking=True)
    return hashed_uniform(keys.to(device), n)


def _rows(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Rows ``ids`` ``(B, K)`` of ``x`` ``(B, N, D)``, as ``(B, K, D)`` (a gather: static shape, no sync)."""
    return torch.gather(x, 1, ids[..., None].expand(-1, -1, x.shape[-1]))


def compile_enabled(compile_cfg: Union[bool, str, Dict], device: torch.device) -> bool:
    """Whether ``compile_cfg`` (False, True, ``'cuda'`` or a ``torch.compile`` kwargs dict) applies on ``device``."""
    if isinstance(compile_cfg, dict):
        return compile_cfg.get('device', 'any') in ('any', device.type)
    if compile_cfg == 'cuda':
        return device.type == 'cuda'
    if isinstance(compile_cfg, bool):
        return compile_cfg
    raise ValueError(f"compile must be False, True, 'cuda' or a dict of torch.compile options, got {compile_cfg!r}")


def maybe_compiled(module: nn.Module, method: str, compile_cfg: Union[bool, str, Dict],
                   device: torch.device) -> Callable:
    """``module.<method>``, compiled with ``fullgraph=True, dynamic=False`` when ``compile_cfg`` applies.

    Args:
        module: an encoder or decoder.
        method: ``'forward'`` or ``'forward_masked'``.
        compile_cfg: False, True, ``'cuda'`` (compile on CUDA only) or a dict of ``torch.compile``
            options (``backend``, ``mode``, ...; ``device='cuda'`` limits it to CUDA).
        device: where the inputs live.

    Returns:
        A callable with the method's signature.
    """
    if not compile_enabled(compile_cfg, device):
        return getattr(module, method)
    fns = _COMPILED.setdefault(module, {})
    if method not in fns:
        options = dict(compile_cfg) if isinstance(compile_cfg, dict) else {}
        options.pop('device', None)
        options = dict(dict(fullgraph=True, dynamic=False), **options)
        fns[method] = _CompiledOrEager(getattr(module, method), options, f'{type(module).__name__}.{method}')
    return fns[method]


def _interrupted(err: BaseException) -> bool:
    """Whether a time limit or an interrupt (not the compiler) is behind ``err``, through its causes."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, (TimeoutError, KeyboardInterrupt)):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


class _CompiledOrEager:
    """A compiled method that falls back to eager, with a warning, if compilation itself fails (a
    default-on switch must not stop a training run on a stack where the compiler breaks). A time
    limit or an interrupt that strikes during compilation is raised, not taken for a compiler failure.

    Attributes:
        fallback: why it runs eagerly (None while it runs compiled).
    """

    def __init__(self, fn: Callable, options: Dict, name: str) -> None:
        self.eager, self.name = fn, name
        self.compiled: Optional[Callable] = torch.compile(fn, **options)
        self.fallback: Optional[str] = None

    def __call__(self, *args, **kwargs):
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except torch._dynamo.exc.TorchDynamoException as err:
                if _interrupted(err):
                    raise
                self.compiled = None
                self.fallback = f'{type(err).__name__}: {str(err)[:500]}'
                print_log(f'torch.compile of {self.name} failed ({self.fallback}); running it eagerly from now on',
                          logger='current', level=logging.WARNING)
        return self.eager(*args, **kwargs)


def compile_fallbacks(model: nn.Module) -> Dict[str, str]:
    """The compiled methods of ``model``'s modules that fell back to eager, with the reason (empty:
    everything configured to compile ran compiled)."""
    return {fn.name: fn.fallback for module in model.modules() for fn in _COMPILED.get(module, {}).values()
            if fn.fallback is not None}


class MAE(BaseModel):
    """Masked autoencoder baseline over mask units.

    Args:
        backbone: config of an encoder with ``forward_masked``, ``unit`` and ``unit_dim``
            (``DyViT`` or ``ViT``).
        decoder: config of the decoder (``CoMADecoder``); ``in_dim`` and ``unit`` are filled in.
        mask_ratio: hidden fraction of the units.
        norm_pix: MAE's per-unit normalised pixel targets (the default of ``head``).
        head: config of the pixel head (``PixelReconstructionHead``: targets, ``norm_pix``, its
            loss); its keys override ``norm_pix``.
        visible_loss_weight: weight of ``loss_pix_visible``, the same pixel loss on the units the
            encoder saw (0, the default: MAE's loss on hidden units only; MAE's paper ablates a loss
            on every patch). An option measured in docs/results.md: it asks every visible unit's latent
            to keep its own content (docs/results.md).
        mask_seed: masks of training step ``s`` on rank ``r`` come from a generator seeded with
            ``(mask_seed, s, r)``; the step count is saved in checkpoints, so a resumed run draws
            exactly the masks an uninterrupted one would.
        compile: compile the encoder's masked forward and the decoder with ``torch.compile``
            (``fullgraph=True, dynamic=False``): False, True, ``'cuda'`` (only when the inputs are
            on a GPU; the full recipes' default) or a dict of ``torch.compile`` options. The
            parameters, state dict and checkpoints are those of the plain modules.
        data_preprocessor: mmengine data preprocessor config.
        init_cfg: mmengine init config.
    """

    def __init__(self, backbone: Dict, decoder: Dict, mask_ratio: float = 0.75, norm_pix: bool = True,
                 mask_seed: int = 0, compile: Union[bool, str, Dict] = False, head: Optional[Dict] = None,
                 visible_loss_weight: float = 0.0, data_preprocessor: Optional[Dict] = None,
                 init_cfg: Optional[Dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if not visible_loss_weight >= 0:
            raise ValueError(f'{type(self).__name__}: visible_loss_weight must be >= 0, got {visible_loss_weight}')
        self.visible_loss_weight = float(visible_loss_weight)
        self.backbone = MODELS.build(backbone)
        self.unit = self.backbone.unit
        self.decoder = MODELS.build(self._decoder_cfg(decoder))
        self.mask_ratio = mask_ratio
        self.mask_seed = mask_seed
        compile_enabled(compile, torch.device('cpu'))  # validates the value
        self.compile = compile
        self.head = MODELS.build(dict(dict(type='PixelReconstructionHead', norm_pix=norm_pix), **(head or {})))
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
        """The uniform noise that ranks each sample's units (lowest hidden), ``(B, gh*gw)``.

        In training it is reproducible: sample ``i`` of step ``s`` draws from a generator seeded with
        ``(mask_seed, s, sample_idx)`` (hashed by :func:`mask_seed_for`) when the data samples carry ``sample_idx`` (then the masks do
        not depend on how the batch is split over processes), else ``(mask_seed, s, rank)``. The
        step count is a checkpointed buffer, so a resumed run draws the masks an uninterrupted one
        would. The noise is computed on the inputs' device (:func:`hashed_uniform`): only the keys,
        one integer per sample, come from the host.
        """
        b = inputs.shape[0]
        n = self.grid(inputs)[0] * self.grid(inputs)[1]
        if not self.training:
            return torch.rand(b, n, device=inputs.device)
        step = self.next_mask_step()
        ids = [s.metainfo.get('sample_idx') for s in data_samples] if data_samples else []
        if ids and all(i is not None for i in ids):
            return keyed_noise([mask_seed_for(self.mask_seed, step, int(i)) for i in ids], n, inputs.device)
        generator = torch.Generator(device=inputs.device).manual_seed(
            mask_seed_for(self.mask_seed, step, -1 - get_rank()))  # ranks: negative indices
        return torch.rand(b, n, generator=generator, device=inputs.device)

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
        losses = dict(loss_pix=self.head.loss(self.decoder.pixel_head(_rows(decoded, hidden)), _rows(target, hidden)))
        self.add_visible_loss(losses, decoded, target, mask, visible)
        return losses

    def add_visible_loss(self, losses: Dict[str, torch.Tensor], decoded: torch.Tensor, units: torch.Tensor,
                         mask: torch.Tensor, num_visible: int, ids_seen: Optional[torch.Tensor] = None) -> None:
        """``losses['loss_pix_visible']``: the pixel loss on the units the encoder saw, times
        ``visible_loss_weight`` (nothing when it is 0). ``ids_seen``: their row-major indices, if known."""
        if self.visible_loss_weight > 0:
            seen = visible_indices(mask, num_visible) if ids_seen is None else ids_seen
            losses['loss_pix_visible'] = self.visible_loss_weight * self.head.loss(
                self.decoder.pixel_head(_rows(decoded, seen)), _rows(units, seen))

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


class CoMA(MAE):
    """Complementary masked autoencoder with an adaptive M_t and a frozen evaluation M_{t-1}.

    Args:
        backbone: as in :class:`MAE`.
        decoder: as in :class:`MAE`; ``latent_dim`` is filled in.
        mask_ratio: hidden fraction of M_t's mask (SPEC default 0.6).
        lambda_lat: weight of ``loss_lat`` (0 logs it without optimising it); the default of
            ``latent_head``'s ``loss_weight``.
        momentum: m of the M_{t-1} update, in [0, 1); 0 = exact previous-step copy.
        norm_pix: per-unit normalised pixel targets.
        latent_loss: ``'cosine'`` or ``'smooth_l1'`` (the default of ``latent_head``'s loss).
        latent_target_norm: ``'batch'`` (default): every channel of M_{t-1}'s latents is
            standardised over the batch's scored units before the distance, so that a collapsed
            encoder (every unit the same latent) scores nothing; ``'none'``: raw latents, with which
            ``loss_lat`` drives the encoder to collapse (docs/results.md); ``'instance'``: each channel standardised over each image's own
            scored units, so that image-level latents score nothing either (only how an image's
            units differ is predicted; data2vec's instance norm). The default of ``latent_head``'s loss.
        mask_seed: as in :class:`MAE`.
        complement_schedule: ``'iid'`` (default): M_t's masks are drawn afresh at every step, as
            MAE's; M_{t-1} sees their complement. ``'alternate'``: M_t's masks come in pairs of
            epochs: in epoch ``2p`` sample ``i`` hides the ``K`` units of lowest noise drawn from
            ``(mask_seed, p, i)``; in epoch ``2p + 1`` the ``K`` of highest, which include every
            unit it saw in epoch ``2p``: over two epochs M_t itself reconstructs every unit. Needs
            ``sample_idx`` in the data samples and the epoch from :meth:`set_epoch` (the
            ``MaskEpochHook`` calls it in the Runner).
        eval_interval: ``loss_eval`` (M_{t-1}'s decoder on the units M_t saw) is monitoring only: it
            is computed at every ``eval_interval``-th training step (and always outside training).
            With ``lambda_lat = 0`` the frozen encoder runs only on those steps too (its latents
            are then monitoring only, logged as ``loss_lat``).
        compile: as in :class:`MAE`; applies to both models.
        head: as in :class:`MAE`.
        latent_head: config of the latent head (``LatentPredictionHead``: the distance to M_{t-1}'s
            latents and its weight); its keys override ``latent_loss`` and ``lambda_lat``.
        visible_loss_weight: as in :class:`MAE` (M_t's pixel loss on the units it saw).
        data_preprocessor: mmengine data preprocessor config.
        init_cfg: mmengine init config.
    """

    def __init__(self, backbone: Dict, decoder: Dict, mask_ratio: float = 0.6, lambda_lat: float = 1.0,
                 momentum: float = 0.0, norm_pix: bool = True, latent_loss: str = 'cosine',
                 latent_target_norm: str = 'batch', mask_seed: int = 0, eval_interval: int = 10,
                 complement_schedule: str = 'iid', compile: Union[bool, str, Dict] = False,
                 head: Optional[Dict] = None, latent_head: Optional[Dict] = None, visible_loss_weight: float = 0.0,
                 data_preprocessor: Optional[Dict] = None, init_cfg: Optional[Dict] = None) -> None:
        super().__init__(backbone, decoder, mask_ratio=mask_ratio, norm_pix=norm_pix, mask_seed=mask_seed,
                         compile=compile, head=head, visible_loss_weight=visible_loss_weight,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if complement_schedule not in ('iid', 'alternate'):
            raise ValueError(f"CoMA: complement_schedule must be 'iid' or 'alternate', got {complement_schedule!r}")
        if complement_schedule == 'alternate' and mask_ratio < 0.5:
            raise ValueError(f"CoMA: complement_schedule='alternate' covers every unit over two epochs only "
                             f"with mask_ratio >= 0.5, got {mask_ratio}")
        self.complement_schedule = complement_schedule
        # the epoch the 'alternate' masks belong to: checkpointed, set by set_epoch
        self.register_buffer('mask_epoch', torch.full((), -1, dtype=torch.long))
        self._epoch: Optional[int] = None  # host copy of mask_epoch (no device read per step)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f'CoMA: momentum must be in [0, 1), got {momentum}')
        if lambda_lat < 0:
            raise ValueError(f'CoMA: lambda_lat must be >= 0, got {lambda_lat}')
        if int(eval_interval) != eval_interval or eval_interval < 1:
            raise ValueError(f'CoMA: eval_interval must be a positive integer, got {eval_interval}')
        self.momentum, self.eval_interval = momentum, int(eval_interval)
        self.latent_head = MODELS.build(dict(dict(type='LatentPredictionHead', loss_weight=lambda_lat,
                                                  loss=dict(type='LatentPredictionLoss', kind=latent_loss,
                                                            target_norm=latent_target_norm)),
                                             **(latent_head or {})))
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
        # checkpoints written before complement_schedule existed have no mask_epoch
        state_dict.setdefault(prefix + 'mask_epoch', self.mask_epoch.detach().clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._epoch = None  # read mask_epoch again

    def set_epoch(self, epoch: int) -> None:
        """The training epoch about to run (for ``complement_schedule='alternate'``)."""
        self._epoch = int(epoch)
        self.mask_epoch.fill_(self._epoch)

    def mask_noise(self, inputs: torch.Tensor, data_samples: Optional[List] = None) -> torch.Tensor:
        if self.complement_schedule == 'iid' or not self.training:
            return super().mask_noise(inputs, data_samples)
        self.next_mask_step()  # the step count still advances (it decides the monitor steps)
        if self._epoch is None:
            self._epoch = int(self.mask_epoch)
        epoch = self._epoch
        ids = [s.metainfo.get('sample_idx') for s in data_samples] if data_samples else []
        if epoch < 0 or not ids or any(i is None for i in ids):
            raise RuntimeError(
                "CoMA(complement_schedule='alternate') needs the epoch (model.set_epoch(e); the Runner's "
                "MaskEpochHook calls it) and a sample_idx in every data sample's metainfo; got epoch "
                f"{epoch} and sample_idx {ids[:4]}")
        n = self.grid(inputs)[0] * self.grid(inputs)[1]
        pair, phase = divmod(epoch, 2)
        # negative 'steps' (-1 - pair): a stream of its own, apart from the per-step one
        noise = keyed_noise([mask_seed_for(self.mask_seed, -1 - pair, int(i)) for i in ids], n, inputs.device)
        return 1.0 - noise if phase else noise

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
        self.add_visible_loss(losses, decoded, units, mask, visible, ids_seen)
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
