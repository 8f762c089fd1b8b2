"""keras.losses"""
from .._missing import missing_names as _missing_names
from ..losses import (  # noqa: F401
                      CategoricalCrossentropy,
                      Loss,
                      SparseCategoricalCrossentropy,
                      categorical_crossentropy,
                      get,
                      sparse_categorical_crossentropy,
)

__getattr__ = _missing_names("tensorflow.keras.losses")
