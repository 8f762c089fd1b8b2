"""keras.preprocessing"""
from ..._missing import missing_names as _missing_names
from . import image  # noqa: F401

__getattr__ = _missing_names("tensorflow.keras.preprocessing")
