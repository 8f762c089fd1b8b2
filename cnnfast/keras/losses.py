"""keras.losses"""
from ..losses import (CategoricalCrossentropy, Loss, SparseCategoricalCrossentropy,  # noqa: F401
                      categorical_crossentropy, get, sparse_categorical_crossentropy)
