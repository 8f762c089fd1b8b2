"""Utilities: seeding, label encoding, the progress bar (`Progbar`, in progbar.py) and
`PyDataset` / `Sequence` (py_dataset.py)."""
from __future__ import annotations

import random

import numpy as np

from .progbar import Progbar  # noqa: F401  (keras.utils.Progbar)
from .py_dataset import PyDataset, Sequence  # noqa: F401  (keras.utils.PyDataset)

_rng = np.random.default_rng()


def set_random_seed(seed):
    """Seed Python's `random`, NumPy's global RNG and cnnfast's own streams (initializers,
    dropout masks, shuffling). The same seed gives the same training run, bit for bit, for
    any thread count and on either engine (docs/training_step.md)."""
    global _rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"set_random_seed: seed must be an int, got {type(seed).__name__}")
    random.seed(int(seed))
    np.random.seed(int(seed) % (2**32))
    _rng = np.random.default_rng(int(seed))


def rng():
    """The generator behind initializers, dropout seeds and shuffling."""
    return _rng


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot encode integer labels, as keras.utils.to_categorical."""
    y = np.asarray(y)
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError("to_categorical: labels must be integers")
    y = y.astype(np.int64)
    shape = y.shape
    if shape and shape[-1] == 1 and len(shape) > 1:
        shape = shape[:-1]
    y = y.reshape(-1)
    if y.size and y.min() < 0:
        raise ValueError(f"to_categorical: negative label {int(y.min())}")
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    elif y.size and y.max() >= num_classes:
        raise ValueError(f"to_categorical: label {int(y.max())} >= num_classes={num_classes}")
    out = np.zeros((y.size, num_classes), dtype=dtype)
    out[np.arange(y.size), y] = 1
    return out.reshape(shape + (num_classes,))
