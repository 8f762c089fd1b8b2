"""`tf.nn`: the functions tutorials pass as `activation=` (relu, sigmoid, tanh, softmax) and
call on arrays, e.g. `tf.nn.softmax(logits).numpy()`. As `activation=` values the layers
recognise them by name and run the fused native kernel; called on arrays they return a
`cnnfast.tensor.Tensor` in the input's float dtype (float32 for Python numbers)."""
from __future__ import annotations

import numpy as np

from . import activations as _activations
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


def _native(name, x):
    """The native kernel on float32 (tf.nn's float32 result for float32 input)."""
    return as_tensor(getattr(_activations, name)(_floats(x).astype(np.float32, copy=False)))


def elu(features, name=None):
    return _native("elu", features)


def selu(features, name=None):
    return _native("selu", features)


def gelu(features, approximate=False, name=None):
    """Exact GELU (tf.nn.gelu's default approximate=False)."""
    if approximate:
        raise NotImplementedError("gelu: approximate=True is not supported by cnnfast")
    return _native("gelu", features)


def silu(features, beta=1.0, name=None):
    if beta != 1.0:
        raise NotImplementedError("silu: only beta=1.0 is supported by cnnfast")
    return _native("silu", features)


swish = silu


def softplus(features, name=None):
    return _native("softplus", features)


def softsign(features, name=None):
    return _native("softsign", features)


def leaky_relu(features, alpha=0.2, name=None):
    if alpha != 0.2:
        raise NotImplementedError("leaky_relu: only alpha=0.2 is supported by cnnfast")
    return _native("leaky_relu", features)


def relu6(features, name=None):
    return _native("relu6", features)


def log_softmax(logits, axis=None, name=None):
    if axis not in (None, -1):
        raise NotImplementedError("log_softmax: only the last axis is supported by cnnfast")
    return _native("log_softmax", logits)


for _f in (relu, sigmoid, tanh, softmax, elu, selu, gelu, silu, softplus, softsign, leaky_relu,
           relu6, log_softmax):
    _f._cnnfast_activation = _f.__name__  # what cnnfast.activations.get() reads
del _f

__getattr__ = _missing_names("tensorflow.nn")
