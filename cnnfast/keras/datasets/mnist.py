"""keras.datasets.mnist"""
from ...datasets.mnist import load_data  # noqa: F401
