"""keras.datasets"""
from ..._missing import missing_names as _missing_names
from . import fashion_mnist, mnist  # noqa: F401

__getattr__ = _missing_names("tensorflow.keras.datasets")
