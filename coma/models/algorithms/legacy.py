"""Configs of MAE and CoMA written for their earlier constructor arguments, in today's form.

Earlier ``model`` dicts set the heads' options at the top level (``lambda_lat``, ``latent_loss``,
``latent_target_norm``, ``norm_pix``) and carried options measured not better than the defaults.
:func:`upgrade_algorithm_cfg` moves the first into ``head`` and ``latent_head``, maps
``complement_schedule='alternate'`` to the ``CoMAAlternate`` variant, drops options at their defaults
and fails, naming the key, on the removed ones set to anything else (docs/results.md keeps what
they measured; git keeps their code).
"""
import copy
from typing import Dict, List, Tuple

#: removed options: key -> (the value that meant "off", what became of it)
REMOVED = {
    'visible_loss_weight': (0.0, 'the pixel loss on visible units was removed (measured not better)'),
    'eval_interval': (10, 'loss_eval is computed every CoMA.eval_interval (10) steps; set the class attribute'),
}


def upgrade_algorithm_cfg(model: Dict) -> Tuple[Dict, List[str]]:
    """``model`` (a config dict of ``type='MAE'`` or ``'CoMA'``) in today's form, and one note per key moved.

    Raises:
        ValueError: a removed option set to anything but its old default, or
            ``latent_target_norm='none'`` (raw latent targets, which collapse the encoder).
    """
    if model.get('type') not in ('MAE', 'CoMA', 'CoMAAlternate'):
        return model, []
    model, notes = copy.deepcopy(dict(model)), []

    def move(key: str, head: str, path: Tuple[str, ...]) -> None:
        if key in model:
            value = model.pop(key)
            node = model.setdefault(head, {}) or {}
            model[head] = node
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = value
            notes.append(f'model.{key} -> model.{head}.{".".join(path)}')

    if model.get('latent_target_norm') == 'none':
        raise ValueError("model.latent_target_norm='none' (raw latent targets) was removed: with them loss_lat "
                         "collapses the encoder (docs/results.md); use 'batch' or 'instance'")
    move('norm_pix', 'head', ('norm_pix',))
    if model.get('type') != 'MAE':
        move('lambda_lat', 'latent_head', ('loss_weight',))
        move('latent_loss', 'latent_head', ('loss', 'kind'))
        move('latent_target_norm', 'latent_head', ('loss', 'target_norm'))
        schedule = model.pop('complement_schedule', None)
        if schedule == 'alternate':
            model['type'] = 'CoMAAlternate'
            notes.append("model.complement_schedule='alternate' -> model.type='CoMAAlternate'")
        elif schedule not in (None, 'iid'):
            raise ValueError(f"model.complement_schedule={schedule!r} is unknown (it was 'iid' or 'alternate')")
    backbone = model.get('backbone')
    for key, off in (('masked_fusion', False), ('coarse_locality', 0.0)):  # DyViT's removed options
        if isinstance(backbone, dict) and key in backbone:
            if backbone[key] != off:
                raise ValueError(f'model.backbone.{key}={backbone[key]!r} was removed (measured not better, '
                                 'docs/results.md)')
            model['backbone'] = {k: v for k, v in backbone.items() if k != key}
            backbone = model['backbone']
            notes.append(f'model.backbone.{key}={off!r} dropped (the default)')
    for key, (off, why) in REMOVED.items():
        if key in model:
            value = model.pop(key)
            if value != off:
                raise ValueError(f'model.{key}={value!r}: {why}')
            notes.append(f'model.{key}={value!r} dropped (the default)')
    return model, notes
