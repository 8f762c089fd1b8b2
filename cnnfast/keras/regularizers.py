"""keras.regularizers"""
from .._missing import missing_names as _missing_names
from ..regularizers import (  # noqa: F401
    L1,
    L1L2,
    L2,
    Regularizer,
    deserialize,
    get,
    l1,
    l1_l2,
    l2,
    serialize,
)

__getattr__ = _missing_names("tensorflow.keras.regularizers")
