from .mae import MAE, CoMA

__all__ = ['MAE', 'CoMA']
