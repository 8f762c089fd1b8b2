"""`tf.math`: the reductions and arg functions of cnnfast.array_ops, and `confusion_matrix`
with TF's semantics (also importable as TF's internal
`cnnfast.python.ops.confusion_matrix.confusion_matrix`)."""
from __future__ import annotations

import numpy as np

from ._missing import missing_names as _missing_names
from .array_ops import (  # noqa: F401
    argmax,
    argmin,
    reduce_max,
    reduce_mean,
    reduce_min,
    reduce_sum,
)
from .nn import softmax  # noqa: F401
from .tensor import as_dtype, as_tensor, convert_to_tensor


def _labels(values, what):
    a = convert_to_tensor(values).view(np.ndarray)
    if a.ndim == 2 and a.shape[1] == 1:  # TF removes a squeezable trailing dimension
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(f"confusion_matrix: `{what}` must be a vector, got shape {a.shape}")
    if a.dtype.kind not in "iu":
        if a.dtype.kind != "f" or np.any(a != np.round(a)):
            raise TypeError(f"confusion_matrix: `{what}` must be integers, got {a.dtype}")
    a = a.astype(np.int64)
    if a.size and a.min() < 0:
        raise ValueError(f"confusion_matrix: `{what}` contains negative values")
    return a


def confusion_matrix(labels, predictions, num_classes=None, weights=None, dtype=np.int32,
                     name=None):
    """(num_classes, num_classes) counts, rows the true labels and columns the predictions,
    as tf.math.confusion_matrix: num_classes defaults to the largest label or prediction + 1,
    `weights` (one per example) are summed instead of ones, the result has `dtype` (int32)."""
    y_true = _labels(labels, "labels")
    y_pred = _labels(predictions, "predictions")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"confusion_matrix: labels and predictions differ in length: "
                         f"{y_true.size} vs {y_pred.size}")
    if num_classes is None:
        k = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    else:
        k = int(num_classes)
        for what, a in (("labels", y_true), ("predictions", y_pred)):
            if a.size and a.max() >= k:
                raise ValueError(f"confusion_matrix: `{what}` out of bound: {int(a.max())} "
                                 f">= num_classes={k}")
    dtype = as_dtype(dtype)
    w = np.ones(y_true.shape, dtype) if weights is None else \
        np.broadcast_to(convert_to_tensor(weights).view(np.ndarray).astype(dtype), y_true.shape)
    cm = np.zeros((k, k), dtype)
    np.add.at(cm, (y_true, y_pred), w)
    return as_tensor(cm)


__getattr__ = _missing_names("tensorflow.math")
