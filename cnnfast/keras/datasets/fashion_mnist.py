"""keras.datasets.fashion_mnist"""
from ..._missing import missing_names as _missing_names
from ...datasets.fashion_mnist import load_data  # noqa: F401

__getattr__ = _missing_names("tensorflow.keras.datasets.fashion_mnist")
