"""Activation functions usable as `activation=` values (strings, these callables, or None).

Each function also computes on NumPy arrays, so `cnnfast.activations.relu(x)` works eagerly.
The layers recognise them by name and run the fused native kernel instead.
"""
from __future__ import annotations

import numpy as np

from . import backend
from ._names import resolve_name

_KERAS_KNOWN_UNSUPPORTED = {
    "exponential", "mish", "hard_silu", "hard_swish", "celu", "glu", "log_sigmoid",
    "sparse_plus", "squareplus", "soft_shrink", "hard_shrink", "tanh_shrink", "hard_tanh",
    "sparsemax", "sparse_sigmoid", "threshold",
}
# Keras's other spellings of a kind (keras.activations.get("swish") is silu; it serialises as
# "silu").
_ALIASES = {"swish": "silu"}


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


def _only_default(fn, **args):
    for arg, (value, default) in args.items():
        if value != default:
            raise NotImplementedError(f"{fn}: {arg}={value!r} is not supported by cnnfast (only "
                                      f"Keras's default {arg}={default!r})")


def elu(x, alpha=1.0):
    _only_default("elu", alpha=(alpha, 1.0))
    return _eager("elu", x)


def selu(x):
    return _eager("selu", x)


def gelu(x, approximate=False):
    """Exact GELU, 0.5 x (1 + erf(x / sqrt 2)) (Keras's default approximate=False)."""
    _only_default("gelu", approximate=(approximate, False))
    return _eager("gelu", x)


def silu(x):
    return _eager("silu", x)


swish = silu


def softplus(x):
    return _eager("softplus", x)


def softsign(x):
    return _eager("softsign", x)


def leaky_relu(x, negative_slope=0.2):
    _only_default("leaky_relu", negative_slope=(negative_slope, 0.2))
    return _eager("leaky_relu", x)


def relu6(x):
    return _eager("relu6", x)


def hard_sigmoid(x):
    """Keras 3's hard sigmoid: relu6(x + 3) / 6 (Keras 2's was 0.2 x + 0.5, clipped)."""
    return _eager("hard_sigmoid", x)


def log_softmax(x, axis=-1):
    if axis != -1:
        raise NotImplementedError("log_softmax: only axis=-1 is supported")
    return _eager("log_softmax", x)


for _f in (linear, relu, sigmoid, tanh, softmax, elu, selu, gelu, silu, softplus, softsign,
           leaky_relu, relu6, hard_sigmoid, log_softmax):
    _f._cnnfast_activation = _f.__name__
del _f


def get(identifier):
    """Canonical activation name ('linear', 'relu', ...) for a string, callable or None."""
    if identifier is None:
        return "linear"
    if isinstance(identifier, str):
        identifier = _ALIASES.get(identifier.lower(), identifier)
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
