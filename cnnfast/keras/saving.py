"""keras.saving: Keras 3 `.keras` and legacy `.h5` files (and cnnfast's `.cnnfast`)."""
from .._missing import missing_names as _missing_names
from ..saving import load_model, save_model  # noqa: F401

__getattr__ = _missing_names("tensorflow.keras.saving")
