"""keras.activations"""
from ..activations import get, linear, relu, sigmoid, softmax, tanh  # noqa: F401
