"""keras.datasets.fashion_mnist"""
from ...datasets.fashion_mnist import load_data  # noqa: F401
