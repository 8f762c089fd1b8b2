"""keras.losses"""
from ..losses import (  # noqa: F401
                      CategoricalCrossentropy,
                      Loss,
                      SparseCategoricalCrossentropy,
                      categorical_crossentropy,
                      get,
                      sparse_categorical_crossentropy,
)
