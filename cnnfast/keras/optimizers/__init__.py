"""keras.optimizers (a package, as tensorflow.keras.optimizers: `.schedules` is a submodule)."""
from ..._missing import missing_names as _missing_names
from ...optimizers import (  # noqa: F401
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
)
from . import schedules  # noqa: F401

__getattr__ = _missing_names("tensorflow.keras.optimizers")
