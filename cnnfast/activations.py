"""Activation functions usable as `activation=` values (strings, these callables, or None).

Each function also computes on NumPy arrays, so `cnnfast.activations.relu(x)` works eagerly.
The layers recognise them by name and run the fused native kernel instead.
"""
from __future__ import annotations

import numpy as np

from . import backend
from ._names import resolve_name

_KERAS_KNOWN_UNSUPPORTED = {
    "elu", "selu", "softplus", "softsign", "swish", "silu", "gelu", "exponential",
    "hard_sigmoid", "leaky_relu", "relu6", "mish", "log_softmax", "hard_silu", "hard_swish",
}


def _eager(name, x):
    x = backend.as_f32(x)
    if x.ndim == 0:
        raise ValueError(f"activation {name!r} needs an array of rank >= 1, got a scalar")
    out = np.empty_like(x)
    backend.activation_forward(out, x, backend.ACTIVATIONS[name])
    return out


def linear(x):
    return _eager("linear", x)


def relu(x):
    return _eager("relu", x)


def sigmoid(x):
    return _eager("sigmoid", x)


def tanh(x):
    return _eager("tanh", x)


def softmax(x, axis=-1):
    if axis != -1:
        raise NotImplementedError("softmax: only axis=-1 is supported")
    return _eager("softmax", x)


for _f in (linear, relu, sigmoid, tanh, softmax):
    _f._cnnfast_activation = _f.__name__
del _f


def get(identifier):
    """Canonical activation name ('linear', 'relu', ...) for a string, callable or None."""
    if identifier is None:
        return "linear"
    if isinstance(identifier, str):
        return resolve_name("activation", identifier, backend.ACTIVATIONS,
                            _KERAS_KNOWN_UNSUPPORTED)
    name = getattr(identifier, "_cnnfast_activation", None)
    if name is not None:
        return name
    if callable(identifier):
        raise NotImplementedError(
            f"activation={identifier!r}: cnnfast runs native kernels and cannot differentiate an "
            f"arbitrary callable; use one of {sorted(backend.ACTIVATIONS)} "
            f"(as a string, cnnfast.activations.X or cnnfast.nn.X)")
    raise TypeError(f"activation must be a string, callable or None, got {identifier!r}")
