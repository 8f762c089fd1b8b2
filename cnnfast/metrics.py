"""Metrics: accuracy in its Keras forms, and the float32 running Mean that Keras keeps."""
from __future__ import annotations

import numpy as np


class Mean:
    """Keras's reduction Mean: float32 total and count, result = total / count."""

    def __init__(self, name="mean"):
        self.name = name
        self.reset_state()

    def reset_state(self):
        self.total = np.float32(0.0)
        self.count = np.float32(0.0)

    def update_state(self, value_sum, weight):
        self.total = np.float32(self.total + np.float32(value_sum))
        self.count = np.float32(self.count + np.float32(weight))

    def result(self):
        return float(self.total / self.count) if self.count else 0.0


class Accuracy:
    """`accuracy` resolved against the loss: sparse (argmax == label) or categorical
    (argmax == argmax of one-hot). Ties take the first index, as argmax does."""

    def __init__(self, name="accuracy", kind=None):
        self.name = name
        self.kind = kind
        self._bufs = {}

    def _buf(self, key, n, dtype):
        b = self._bufs.get((key, n))
        if b is None:
            b = self._bufs[(key, n)] = np.empty(n, dtype)
        return b

    def correct(self, y_true, y_pred):
        """Number of correct rows; reuses its index buffers (called every training step)."""
        n = y_pred.shape[0]
        pred = np.argmax(y_pred.reshape(n, -1), axis=-1, out=self._buf("pred", n, np.intp))
        if self.kind == "sparse":
            truth = y_true.reshape(-1)
        else:
            truth = np.argmax(y_true.reshape(n, -1), axis=-1, out=self._buf("true", n, np.intp))
        return np.count_nonzero(np.equal(pred, truth, out=self._buf("eq", n, np.bool_)))


_ALIASES = {"accuracy": None, "acc": None, "sparse_categorical_accuracy": "sparse",
            "categorical_accuracy": "categorical"}


def get(identifier, sparse_labels):
    """Resolve a metric given in compile(); 'accuracy'/'acc' are auto-mapped as Keras does."""
    if isinstance(identifier, Accuracy):
        if identifier.kind is None:
            identifier.kind = "sparse" if sparse_labels else "categorical"
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _ALIASES:
        kind = _ALIASES[identifier.lower()] or ("sparse" if sparse_labels else "categorical")
        return Accuracy(name=identifier, kind=kind)
    if isinstance(identifier, str):
        raise NotImplementedError(f"metric {identifier!r} is not implemented by cnnfast; "
                                  f"supported: {sorted(_ALIASES)}")
    raise NotImplementedError(f"metric {identifier!r}: only accuracy metrics are supported")


def SparseCategoricalAccuracy(name="sparse_categorical_accuracy"):
    return Accuracy(name=name, kind="sparse")


def CategoricalAccuracy(name="categorical_accuracy"):
    return Accuracy(name=name, kind="categorical")
