"""keras.models"""
from .._missing import missing_names as _missing_names
from ..models import Model, Sequential, clone_model, load_model  # noqa: F401
from ..saving import save_model  # noqa: F401

__getattr__ = _missing_names("tensorflow.keras.models")
