"""Data adapters: the checks and conversions `fit`, `evaluate`, `predict` and calls on arrays
apply to x and y once, before any step (Keras: trainers/data_adapters). Each error names the
model's input layer and the shapes."""
from __future__ import annotations

import numpy as np

from ..layers.base import shape_str


def prepare_x(model, x, what):
    """float32 C-contiguous array matching the model input (channel axis added if the
    model expects a trailing 1, as Keras does). Raises naming the input layer."""
    if x is None:
        raise ValueError(f"{what}(): x is required")
    if isinstance(x, (list, tuple)) and len(x) == 1 and len(model.inputs) == 1:
        x = x[0]
    if isinstance(x, dict) or (isinstance(x, (list, tuple)) and len(model.inputs) > 1):
        raise NotImplementedError(f"{what}(): models with several inputs are not supported")
    if not isinstance(x, np.ndarray):
        if hasattr(x, "__next__") or type(x).__name__.endswith("Dataset"):
            raise NotImplementedError(f"{what}(): x must be a NumPy array; generators and "
                                      "datasets are not supported")
        x = np.asarray(x)
    if x.dtype == object or x.dtype.kind in "USVMmc":
        raise TypeError(f"{what}(): x must be a numeric array, got dtype {x.dtype}")
    if x.ndim == 0 or x.shape[0] == 0 or x.size == 0:
        raise ValueError(f"{what}(): x is empty (shape {x.shape})")
    if model._tensors is None:
        model._build_from_shape(x.shape)
    ref = model.inputs[0].shape
    if x.ndim == len(ref) - 1 and ref[-1] == 1:
        x = x.reshape(x.shape + (1,))
    consumer = next((layer for layer, i, _ in model._plan if i == model._input_ids[0]), None)
    who = f"layer '{consumer.name}' ({type(consumer).__name__})" if consumer else \
        f"model '{model.name}'"
    if x.ndim != len(ref) or any(r is not None and r != d for r, d in zip(ref[1:],
                                                                         x.shape[1:])):
        raise ValueError(f"{what}(): input of {who} is incompatible: expected shape "
                         f"{shape_str(ref)}, found shape {shape_str(x.shape)}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise ValueError(f"{what}(): x contains {bad} NaN or infinite values")
    return x

def prepare_y(model, y, n, what):
    if y is None:
        raise ValueError(f"{what}(): y is required for training and evaluation")
    y = np.asarray(y)
    if y.dtype == object or y.dtype.kind in "USVMmc":
        raise TypeError(f"{what}(): y must be numeric, got dtype {y.dtype}")
    if y.ndim == 0 or y.shape[0] != n:
        raise ValueError(f"{what}(): x and y have different numbers of samples: x has {n}, "
                         f"y has shape {y.shape}")
    k = model.outputs[0].shape[-1]
    if model.loss.sparse:
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            hint = " (labels look one-hot: use loss='categorical_crossentropy')" \
                if y.ndim == 2 and y.shape[1] == k else ""
            raise ValueError(f"{what}(): {model.loss.name} needs integer labels of shape "
                             f"({n},), got shape {y.shape}{hint}")
        if y.dtype.kind == "f":
            if not np.isfinite(y).all() or np.any(y != np.round(y)):
                raise ValueError(f"{what}(): labels must be integers, got non-integer "
                                 "values")
        elif y.dtype.kind not in "iub":
            raise TypeError(f"{what}(): labels must be integers, got dtype {y.dtype}")
        lo, hi = (y.min(), y.max())
        if lo < 0 or hi >= k:
            raise ValueError(f"{what}(): labels must be in [0, {k}) for an output of shape "
                             f"{shape_str(model.outputs[0].shape)}, got values in "
                             f"[{lo}, {hi}]")
        return np.ascontiguousarray(y, dtype=np.int32)
    if y.ndim != 2 or y.shape[1] != k:
        hint = " (integer labels: use loss='sparse_categorical_crossentropy' or " \
            "to_categorical)" if y.ndim == 1 else ""
        raise ValueError(f"{what}(): {model.loss.name} needs one-hot targets of shape "
                         f"({n}, {k}), got shape {y.shape}{hint}")
    y = np.ascontiguousarray(y, dtype=np.float32)
    if not np.isfinite(y).all():
        raise ValueError(f"{what}(): y contains NaN or infinite values")
    return y
