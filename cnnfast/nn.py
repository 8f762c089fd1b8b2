"""`tf.nn`: the functions tutorials pass as `activation=` (relu, sigmoid, tanh, softmax) and
call on arrays, e.g. `tf.nn.softmax(logits).numpy()`. As `activation=` values the layers
recognise them by name and run the fused native kernel; called on arrays they return a
`cnnfast.tensor.Tensor` in the input's float dtype (float32 for Python numbers)."""
from __future__ import annotations

import numpy as np

from ._missing import missing_names as _missing_names
from .tensor import as_tensor, convert_to_tensor


def _floats(x):
    a = convert_to_tensor(x).view(np.ndarray)
    return a if a.dtype.kind == "f" else a.astype(np.float32)


def relu(features, name=None):
    return as_tensor(np.maximum(_floats(features), 0))


def sigmoid(x, name=None):
    a = _floats(x)
    # exp of a non-positive argument only: no overflow for large |x|
    e = np.exp(-np.abs(a))
    return as_tensor(np.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype))


def tanh(x, name=None):
    return as_tensor(np.tanh(_floats(x)))


def softmax(logits, axis=None, name=None):
    """exp(logits) / sum(exp(logits)) along `axis` (the last when None), computed stably."""
    a = _floats(logits)
    axis = -1 if axis is None else int(axis)
    e = np.exp(a - np.max(a, axis=axis, keepdims=True))
    return as_tensor(e / np.sum(e, axis=axis, keepdims=True))


for _f in (relu, sigmoid, tanh, softmax):
    _f._cnnfast_activation = _f.__name__  # what cnnfast.activations.get() reads
del _f

__getattr__ = _missing_names("tensorflow.nn")
