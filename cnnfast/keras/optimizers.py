"""keras.optimizers"""
from .._missing import missing_names as _missing_names
from ..optimizers import (  # noqa: F401
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    Nadam,
    Optimizer,
    RMSprop,
    get,
    schedules,
)

__getattr__ = _missing_names("tensorflow.keras.optimizers")
