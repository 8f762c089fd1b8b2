"""`tf.nn`: the functions tutorials pass as `activation=` (relu, sigmoid, tanh, softmax) and
call on arrays, e.g. `tf.nn.softmax(logits).numpy()`. As `activation=` values the layers
recognise them by name and run the fused native kernel (with their default arguments);
called on arrays they return a `cnnfast.tensor.Tensor` in the input's float dtype (float32
for Python numbers), computed as cnnfast.activations computes them."""
from __future__ import annotations

import numpy as np

from . import activations as _activations
from ._missing import missing_names as _missing_names
from .tensor import as_tensor


def relu(features, name=None):
    return _activations.relu(features)


def sigmoid(x, name=None):
    return _activations.sigmoid(x)


def tanh(x, name=None):
    return _activations._unary("tanh", x, "tanh")  # tf.nn.tanh rejects integer tensors


def softmax(logits, axis=None, name=None):
    """exp(logits) / sum(exp(logits)) along `axis` (the last when None), computed stably."""
    return _activations.softmax(logits, axis=-1 if axis is None else axis)


def elu(features, name=None):
    return _activations.elu(features)


def selu(features, name=None):
    return _activations.selu(features)


def gelu(features, approximate=False, name=None):
    """Exact GELU (tf.nn.gelu's default approximate=False), or the tanh approximation."""
    return _activations.gelu(features, approximate=approximate)


def silu(features, beta=1.0):
    """features * sigmoid(beta * features)."""
    beta = _activations._number(beta, "silu", "beta")
    if beta == 1.0:
        return _activations.silu(features)
    a = _activations._floats(features, "silu")
    return as_tensor(a * _activations.sigmoid(a * a.dtype.type(beta)).view(np.ndarray))


swish = silu


def softplus(features, name=None):
    return _activations.softplus(features)


def softsign(features, name=None):
    return _activations.softsign(features)


def leaky_relu(features, alpha=0.2, name=None):
    """features > 0 -> features, else alpha * features (integer input in float32)."""
    return _activations.leaky_relu(features, negative_slope=alpha)


def relu6(features, name=None):
    return _activations.relu6(features)


def log_softmax(logits, axis=None, name=None):
    return _activations.log_softmax(logits, axis=-1 if axis is None else axis)


for _f in (relu, sigmoid, tanh, softmax, elu, selu, gelu, silu, softplus, softsign, leaky_relu,
           relu6, log_softmax):
    _f._cnnfast_activation = _f.__name__  # what cnnfast.activations.get() reads
del _f

__getattr__ = _missing_names("tensorflow.nn")
