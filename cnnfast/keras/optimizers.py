"""keras.optimizers"""
from .._missing import missing_names as _missing_names
from ..optimizers import SGD, Adam, Optimizer, RMSprop, get  # noqa: F401

__getattr__ = _missing_names("tensorflow.keras.optimizers")
