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

    def correct(self, y_true, y_pred):
        pred = np.argmax(y_pred, axis=-1)
        if self.kind == "sparse":
            return np.count_nonzero(pred == y_true.reshape(-1))
        return np.count_nonzero(pred == np.argmax(y_true, axis=-1))


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
