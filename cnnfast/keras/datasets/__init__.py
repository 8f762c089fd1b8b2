"""keras.datasets"""
from . import fashion_mnist, mnist  # noqa: F401
