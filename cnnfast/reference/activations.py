"""Reference activations: 'linear', 'relu', 'sigmoid', 'tanh', 'softmax'.

activation_forward(x, name) -> y, same shape as x (any rank >= 1; softmax over the last axis).
activation_backward(dy, y, name) -> dx, written in terms of the forward OUTPUT y:
    relu:    dx = dy * (y > 0)            (derivative 0 at 0, TF's ReluGrad)
    sigmoid: dx = dy * y * (1 - y)
    tanh:    dx = dy * (1 - y^2)
    softmax: dx = y * (dy - sum(dy * y, last axis))
Arithmetic is float64 by default. The oracle is name-based and never needs the compiled module
(the native kinds are cnnfast._core.Activation, whose member names are these names).
"""
import numpy as np

from ._checks import as_float_array, same_shape

__all__ = ["ACTIVATION_NAMES", "activation_forward", "activation_backward", "softmax"]

ACTIVATION_NAMES = ("linear", "relu", "sigmoid", "tanh", "softmax")


def _name(name):
    if name not in ACTIVATION_NAMES:
        raise ValueError(f"unknown activation {name!r}; expected one of {list(ACTIVATION_NAMES)}")
    return name


def softmax(z, axis=-1):
    """Numerically stable softmax (shift by the row max)."""
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _sigmoid(x):
    # Two branches so exp never overflows: exp(-|x|) <= 1.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def activation_forward(x, name, dtype=np.float64):
    """y = act(x), same shape as x."""
    name = _name(name)
    x = as_float_array(x, "x", None, dtype)
    if x.ndim < 1:
        raise ValueError(f"x must be at least 1-D, got shape {x.shape}")
    if name == "linear":
        return x.copy()
    if name == "relu":
        return np.maximum(x, 0)
    if name == "sigmoid":
        return _sigmoid(x)
    if name == "tanh":
        return np.tanh(x)
    if x.shape[-1] == 0:
        raise ValueError(f"softmax over an empty last axis, x has shape {x.shape}")
    return softmax(x)


def activation_backward(dy, y, name, dtype=np.float64):
    """dx from the upstream gradient dy and the forward output y (same shapes)."""
    name = _name(name)
    dy = as_float_array(dy, "dy", None, dtype)
    y = as_float_array(y, "y", None, dtype)
    same_shape(dy, y, "dy", "y")
    if name == "linear":
        return dy.copy()
    if name == "relu":
        return np.where(y > 0, dy, 0.0)
    if name == "sigmoid":
        return dy * (y * (1.0 - y))
    if name == "tanh":
        return dy * (1.0 - y * y)
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))
