"""keras.losses"""
from .._missing import missing_names as _missing_names
from ..losses import (  # noqa: F401
                      KLD,
                      MAE,
                      MSE,
                      BinaryCrossentropy,
                      CategoricalCrossentropy,
                      CategoricalHinge,
                      Hinge,
                      Huber,
                      KLDivergence,
                      Loss,
                      MeanAbsoluteError,
                      MeanSquaredError,
                      SparseCategoricalCrossentropy,
                      SquaredHinge,
                      binary_crossentropy,
                      categorical_crossentropy,
                      categorical_hinge,
                      get,
                      hinge,
                      huber,
                      kl_divergence,
                      kld,
                      mae,
                      mean_absolute_error,
                      mean_squared_error,
                      mse,
                      sparse_categorical_crossentropy,
                      squared_hinge,
)

__getattr__ = _missing_names("tensorflow.keras.losses")
