"""``torch.compile`` for the pre-training algorithms: whole-graph compilation of an encoder's masked
forward and a decoder, with a fall-back to eager if the compiler itself fails."""
import logging
import weakref
from typing import Callable, Dict, Optional, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log

#: Compiled ``forward``/``forward_masked`` per module instance (weak keys: a copied or rebuilt
#: module compiles its own; nothing compiled is stored on the module, so state dicts, deep copies
#: and DDP see the plain module).
_COMPILED: 'weakref.WeakKeyDictionary[nn.Module, Dict[str, Callable]]' = weakref.WeakKeyDictionary()


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
