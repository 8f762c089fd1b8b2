"""keras.activations"""
from .._missing import missing_names as _missing_names
from ..activations import get, linear, relu, sigmoid, softmax, tanh  # noqa: F401

__getattr__ = _missing_names("tensorflow.keras.activations")
