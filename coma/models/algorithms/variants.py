"""Registered variants of the pre-training algorithms, for reproducing the ablations in
docs/results.md; none of them was measured better than the default it varies."""
from typing import List, Optional

import torch

from ...masking import alternate_noise
from .coma import CoMA


class CoMAAlternate(CoMA):
    """CoMA whose M_t masks come in pairs of epochs (:func:`coma.masking.alternate_noise`): in epoch
    ``2p`` sample ``i`` hides the units of lowest noise keyed ``(mask_seed, p, sample_idx)``, in epoch
    ``2p + 1`` those of highest, which include every unit it saw in epoch ``2p``: over two epochs M_t
    itself reconstructs every unit. Needs ``sample_idx`` in the data samples and the epoch from
    :meth:`set_epoch` (the Runner's ``MaskEpochHook`` calls it). Arguments as :class:`CoMA`, with
    ``mask_ratio >= 0.5``.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.mask_ratio < 0.5:
            raise ValueError(f'CoMAAlternate covers every unit over two epochs only with mask_ratio >= 0.5, '
                             f'got {self.mask_ratio}')
        # the epoch the masks belong to: checkpointed, set by set_epoch
        self.register_buffer('mask_epoch', torch.full((), -1, dtype=torch.long))
        self._epoch: Optional[int] = None  # host copy of mask_epoch (no device read per step)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        state_dict.setdefault(prefix + 'mask_epoch', self.mask_epoch.detach().clone())  # a CoMA checkpoint
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._epoch = None  # read mask_epoch again

    def set_epoch(self, epoch: int) -> None:
        """The training epoch about to run."""
        self._epoch = int(epoch)
        self.mask_epoch.fill_(self._epoch)

    def mask_noise(self, inputs: torch.Tensor, data_samples: Optional[List] = None) -> torch.Tensor:
        if not self.training:
            return super().mask_noise(inputs, data_samples)
        self.next_mask_step()  # the step count still advances (it decides the monitor steps)
        if self._epoch is None:
            self._epoch = int(self.mask_epoch)
        gh, gw = self.grid(inputs)
        return alternate_noise(self.mask_seed, self._epoch, data_samples, gh * gw, inputs.device)
