"""Reference activations: 'linear', 'relu', 'sigmoid', 'tanh', 'softmax', and Keras 3's elu,
selu, gelu (exact, erf), silu, softplus, softsign, leaky_relu (slope 0.2), relu6, hard_sigmoid
(relu6(x + 3) / 6) and log_softmax.

activation_forward(x, name) -> y, same shape as x (any rank >= 1; softmax over the last axis).
activation_backward(dy, y, name) -> dx, written in terms of the forward OUTPUT y:
    relu:    dx = dy * (y > 0)            (derivative 0 at 0, TF's ReluGrad)
    sigmoid: dx = dy * y * (1 - y)
    tanh:    dx = dy * (1 - y^2)
    softmax: dx = y * (dy - sum(dy * y, last axis))
and the others by their analytic derivative, from x (passed as `x=`) where it is not a
function of y (gelu, silu, softplus, softsign).
Arithmetic is float64 by default. The oracle is name-based and never needs the compiled module
(the native kinds are cnnfast._core.Activation, whose member names are these names).
"""
import numpy as np

from ._checks import as_float_array, same_shape

__all__ = ["ACTIVATION_NAMES", "activation_forward", "activation_backward", "softmax"]

ACTIVATION_NAMES = ("linear", "relu", "sigmoid", "tanh", "softmax", "elu", "selu", "gelu", "silu",
                    "softplus", "softsign", "leaky_relu", "relu6", "hard_sigmoid", "log_softmax")
NEEDS_INPUT = ("gelu", "silu", "softplus", "softsign")
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
LEAKY_SLOPE = 0.2


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
    if name in _MORE_FWD:
        return _MORE_FWD[name](x)
    if x.shape[-1] == 0:
        raise ValueError(f"softmax over an empty last axis, x has shape {x.shape}")
    return softmax(x)


def activation_backward(dy, y, name, dtype=np.float64, x=None):
    """dx from the upstream gradient dy and the forward output y (same shapes); x, the forward
    input, is needed by the kinds in NEEDS_INPUT."""
    name = _name(name)
    dy = as_float_array(dy, "dy", None, dtype)
    y = as_float_array(y, "y", None, dtype)
    same_shape(dy, y, "dy", "y")
    if name in NEEDS_INPUT:
        if x is None:
            raise ValueError(f"{name}: the backward needs x, the forward input")
        x = as_float_array(x, "x", None, dtype)
        same_shape(dy, x, "dy", "x")
        return dy * _MORE_DERIV[name](x)
    if name in _MORE_BWD:
        return _MORE_BWD[name](dy, y)
    if name == "linear":
        return dy.copy()
    if name == "relu":
        return np.where(y > 0, dy, 0.0)
    if name == "sigmoid":
        return dy * (y * (1.0 - y))
    if name == "tanh":
        return dy * (1.0 - y * y)
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


def _erf(x):
    from math import erf
    return np.vectorize(erf, otypes=[np.float64])(x)


def _gelu(x):
    return 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0)))


def _log_softmax(x):
    if x.shape[-1] == 0:
        raise ValueError(f"log_softmax over an empty last axis, x has shape {x.shape}")
    s = x - x.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


_MORE_FWD = {
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0))),
    "gelu": _gelu,
    "silu": lambda x: x * _sigmoid(x),
    "softplus": lambda x: np.logaddexp(x, 0.0),
    "softsign": lambda x: x / (1.0 + np.abs(x)),
    "leaky_relu": lambda x: np.where(x > 0, x, LEAKY_SLOPE * x),
    "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "hard_sigmoid": lambda x: np.clip(x + 3.0, 0.0, 6.0) / 6.0,
    "log_softmax": _log_softmax,
}
_MORE_DERIV = {  # d act / dx as a function of x
    "gelu": lambda x: 0.5 * (1.0 + _erf(x / np.sqrt(2.0)))
    + x * np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi),
    "silu": lambda x: _sigmoid(x) * (1.0 + x * (1.0 - _sigmoid(x))),
    "softplus": _sigmoid,
    "softsign": lambda x: 1.0 / (1.0 + np.abs(x)) ** 2,
}
_MORE_BWD = {  # dx from dy and the output y
    "elu": lambda dy, y: np.where(y < 0, dy * (y + 1.0), dy),
    "selu": lambda dy, y: np.where(y < 0, dy * (y + SELU_SCALE * SELU_ALPHA), dy * SELU_SCALE),
    "leaky_relu": lambda dy, y: np.where(y > 0, dy, dy * LEAKY_SLOPE),
    "relu6": lambda dy, y: np.where((y > 0) & (y < 6), dy, 0.0),
    "hard_sigmoid": lambda dy, y: np.where((y > 0) & (y < 1), dy / 6.0, 0.0),
    "log_softmax": lambda dy, y: dy - dy.sum(axis=-1, keepdims=True) * np.exp(y),
}
