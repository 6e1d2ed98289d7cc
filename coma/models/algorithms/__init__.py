from .coma import CoMA
from .mae import MAE
from .variants import CoMAAlternate

__all__ = ['MAE', 'CoMA', 'CoMAAlternate']
