"""keras.saving: Keras 3 `.keras` and legacy `.h5` files (and cnnfast's `.cnnfast`), and the
registry of custom (subclassed) models for model.save / load_model."""
from .._missing import missing_names as _missing_names
from ..saving import load_model, save_model  # noqa: F401
from ..saving.serialization import (  # noqa: F401
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
)

__getattr__ = _missing_names("tensorflow.keras.saving")
