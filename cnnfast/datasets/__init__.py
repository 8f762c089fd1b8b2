"""Bundled datasets with Keras's ``load_data()`` contracts (``keras.datasets``)."""
from . import fashion_mnist, mnist
from ._fetch import DatasetNotFoundError, DownloadError
from ._idx import IdxError

__all__ = ["fashion_mnist", "mnist", "DatasetNotFoundError", "DownloadError", "IdxError"]
