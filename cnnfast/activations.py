"""Activation functions usable as `activation=` values (strings, these callables, or None),
and callable eagerly on arrays as `keras.activations.X(x, ...)` is (Keras 3, TF backend).

Called on a NumPy array, a Python list or a cnnfast Tensor, each function returns a Tensor
(an array with `.numpy()`) of the input's dtype, as Keras does: Python floats become float32,
float64 stays float64; integer input is accepted where Keras accepts it (relu and relu6 keep
the integer dtype; leaky_relu, tanh and exponential give float32) and is a TypeError
elsewhere (TF rejects integer tensors there). Arguments follow Keras 3's formulas
(keras/src/activations/activations.py, keras/src/backend/tensorflow/nn.py). float32 input
of a function without arguments runs the native kernel the layers run; other dtypes and
argument values compute the same formula in NumPy.

As `activation=` values the layers recognise these functions by name and run the fused
native kernel (their Keras default arguments are the kind's formula). Functions without a
native kernel (mish, exponential, celu, ...) and arbitrary callables raise
NotImplementedError when a layer is given them (docs/keras_semantics.md#activation-layers).
"""
from __future__ import annotations

import math

import numpy as np

from . import backend
from ._names import resolve_name
from .tensor import as_tensor, convert_to_tensor

_KERAS_KNOWN_UNSUPPORTED = {
    "exponential", "mish", "hard_silu", "hard_swish", "celu", "glu", "log_sigmoid",
    "sparse_plus", "squareplus", "soft_shrink", "hard_shrink", "tanh_shrink", "hard_tanh",
    "sparsemax", "sparse_sigmoid", "threshold",
}
# Keras's other spellings of a kind (keras.activations.get("swish") is silu; it serialises as
# "silu").
_ALIASES = {"swish": "silu"}

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _floats(x, fn, ints="error"):
    """`x` as an ndarray with TF's dtype inference; integer input per `ints`: 'keep' (the
    integer dtype), 'float32' (cast, as Keras's ops do) or 'error' (TypeError, as TF)."""
    a = convert_to_tensor(x).view(np.ndarray)
    if a.dtype.kind == "f":
        return a
    if a.dtype.kind in "iub":
        if ints == "keep" and a.dtype.kind != "b":
            return a
        if ints == "float32":
            return a.astype(np.float32)
    raise TypeError(f"{fn}: input of dtype {a.dtype.name} is not supported (TF computes it on "
                    "floating-point tensors only)")


def _native(name, a):
    """The native float32 kernel of activation kind `name` on float32 array `a`."""
    src = np.ascontiguousarray(a).reshape(a.shape or (1,))
    out = np.empty_like(src)
    backend.activation_forward(out, src, backend.ACTIVATIONS[name])
    return out.reshape(a.shape)


def _c(value, a):
    """A Python number as a scalar of `a`'s dtype (TF's weak-typed constants)."""
    return a.dtype.type(value)


def _sigmoid_np(a):
    # exp of a non-positive argument only: no overflow for large |x|
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)


def _softplus_np(a):
    return (np.log1p(np.exp(-np.abs(a))) + np.maximum(a, _c(0, a))).astype(a.dtype, copy=False)


def _erfc(a):
    return np.frompyfunc(math.erfc, 1, 1)(a).astype(a.dtype)


# tf.nn.gelu casts these constants to the input's dtype from float32 tensors (math_ops.cast of
# a Python float), so float64 input sees their float32 values
_GELU_RSQRT2 = float(np.float32(0.7071067811865476))
_GELU_COEFF = float(np.float32(0.044715))


_FORMULAS = {
    "linear": lambda a: a,
    "relu": lambda a: np.maximum(a, _c(0, a)),
    "relu6": lambda a: np.clip(a, _c(0, a), _c(6, a)),
    "sigmoid": _sigmoid_np,
    "tanh": np.tanh,
    "elu": lambda a: np.where(a > 0, a, np.exp(a) - _c(1, a)),
    "selu": lambda a: _c(_SELU_SCALE, a) * np.where(a > 0, a, _c(_SELU_ALPHA, a) *
                                                    (np.exp(a) - _c(1, a))),
    "gelu": lambda a: _c(0.5, a) * a * _erfc(-a * _c(_GELU_RSQRT2, a)),
    "silu": lambda a: a * _sigmoid_np(a),
    "softplus": _softplus_np,
    "softsign": lambda a: a / (_c(1, a) + np.abs(a)),
    "leaky_relu": lambda a: np.where(a > 0, a, a * _c(0.2, a)),
    "hard_sigmoid": lambda a: np.clip(a + _c(3, a), _c(0, a), _c(6, a)) / _c(6, a),
}


def _unary(name, x, fn=None, ints="error"):
    """Activation kind `name` on `x`: the native kernel for float32, NumPy otherwise."""
    a = _floats(x, fn or name, ints)
    if a.dtype == np.float32 and name in backend.ACTIVATIONS and name != "linear":
        return as_tensor(_native(name, a))
    if a.dtype == np.float16:  # computed in float32, as TF's Eigen kernels do for half
        return as_tensor(_unary(name, a.astype(np.float32), fn).view(np.ndarray)
                         .astype(np.float16))
    return as_tensor(np.asarray(_FORMULAS[name](a), dtype=a.dtype))


def _axes(axis, ndim, fn):
    """A normalised tuple of axes (None: all of them); ValueError naming `fn` when out of
    range."""
    if ndim == 0:
        raise ValueError(f"{fn}: logits must have >= 1 dimension, got a scalar")
    if axis is None:
        return tuple(range(ndim))
    axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    out = []
    for ax in axes:
        if isinstance(ax, bool) or not isinstance(ax, (int, np.integer)):
            raise TypeError(f"{fn}: axis must be an int or a tuple of ints, got {axis!r}")
        if not -ndim <= ax < ndim:
            raise ValueError(f"{fn}: `dim` must be in the range [{-ndim}, {ndim}) where {ndim} "
                             f"is the number of dimensions in the input. Received: dim={ax}")
        out.append(int(ax) % ndim)
    return tuple(out)


def _softmax_np(a, axes, log):
    if a.dtype == np.float16:
        return _softmax_np(a.astype(np.float32), axes, log).astype(np.float16)
    z = a - np.max(a, axis=axes, keepdims=True)
    e = np.exp(z)
    s = np.sum(e, axis=axes, keepdims=True)
    return (z - np.log(s)) if log else (e / s)


def _softmax(x, axis, fn, log):
    a = _floats(x, fn)
    axes = _axes(axis, a.ndim, fn)
    if a.dtype == np.float32 and axes == (a.ndim - 1,):
        if log:
            return as_tensor(_native("log_softmax", a))
        out = np.empty_like(a)
        backend.softmax_axis_forward(out, np.ascontiguousarray(a), -1)
        return as_tensor(out)
    return as_tensor(_softmax_np(a, axes, log))


def _number(value, fn, arg, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: {arg} must be a number, got {value!r}")
    return float(value)


# ---- the functions of keras.activations ----------------------------------------------------

def linear(x):
    return as_tensor(convert_to_tensor(x))


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras 3's relu (ReLU.static_call): with the defaults max(x, 0); otherwise x where
    x > threshold (0 elsewhere), clipped to [0, max_value], minus negative_slope *
    relu(threshold - x)."""
    negative_slope = _number(negative_slope, "relu", "negative_slope")
    max_value = _number(max_value, "relu", "max_value", allow_none=True)
    threshold = _number(threshold, "relu", "threshold")
    if negative_slope == 0.0 and threshold == 0.0 and max_value is None:
        return _unary("relu", x, ints="keep")
    if negative_slope != 0.0 and max_value is None and threshold == 0.0:
        return leaky_relu(x, negative_slope)
    a = _floats(x, "relu", ints="keep")
    if negative_slope != 0.0:
        negative_part = np.maximum(-a + _c(threshold, a), _c(0, a)) if threshold != 0 \
            else np.maximum(-a, _c(0, a))
    clip_max = max_value is not None
    if threshold != 0:
        y = np.where(a > _c(threshold, a), a, _c(0, a))
    elif max_value == 6:
        y, clip_max = np.clip(a, _c(0, a), _c(6, a)), False
    else:
        y = np.maximum(a, _c(0, a))
    if clip_max:
        y = np.clip(y, _c(0, a), _c(max_value, a))
    if negative_slope != 0.0:
        y = y - _c(negative_slope, a) * negative_part
    return as_tensor(np.asarray(y, dtype=a.dtype))


def sigmoid(x):
    return _unary("sigmoid", x)


def tanh(x):
    return _unary("tanh", x, ints="float32")


def softmax(x, axis=-1):
    """exp(x - max) / sum(exp(x - max)) over `axis` (an int, a tuple of ints, or None for all
    axes)."""
    return _softmax(x, axis, "softmax", log=False)


def log_softmax(x, axis=-1):
    return _softmax(x, axis, "log_softmax", log=True)


def elu(x, alpha=1.0):
    """x > 0 -> x, else alpha * (exp(x) - 1)."""
    alpha = _number(alpha, "elu", "alpha")
    y = _unary("elu", x)
    if alpha == 1.0:
        return y
    a = _floats(x, "elu")
    y = y.view(np.ndarray)
    return as_tensor(np.where(a > 0, y, _c(alpha, y) * y).astype(y.dtype, copy=False))


def selu(x):
    return _unary("selu", x)


def gelu(x, approximate=False):
    """0.5 x (1 + erf(x / sqrt 2)) (Keras's default approximate=False), or with
    approximate=True 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    if not approximate:
        return _unary("gelu", x)
    a = _floats(x, "gelu")
    w = a.astype(np.float32) if a.dtype == np.float16 else a
    y = _c(0.5, w) * w * (_c(1, w) + np.tanh(_c(0.7978845608028654, w) *
                                             (w + _c(_GELU_COEFF, w) * w ** 3)))
    return as_tensor(y.astype(a.dtype, copy=False))


def silu(x):
    return _unary("silu", x)


swish = silu


def softplus(x):
    return _unary("softplus", x)


def softsign(x):
    return _unary("softsign", x)


def leaky_relu(x, negative_slope=0.2):
    """x > 0 -> x, else negative_slope * x (integer input is computed in float32)."""
    negative_slope = _number(negative_slope, "leaky_relu", "negative_slope")
    a = _floats(x, "leaky_relu", ints="float32")
    if np.float32(negative_slope) == np.float32(0.2) and a.dtype != np.float64:
        return _unary("leaky_relu", a)
    # TF's LeakyRelu op holds alpha as a float32 attribute, for float64 input too
    slope = _c(np.float32(negative_slope), a)
    return as_tensor(np.where(a > 0, a, a * slope).astype(a.dtype, copy=False))


def relu6(x):
    return _unary("relu6", x, ints="keep")


def hard_sigmoid(x):
    """Keras 3's hard sigmoid: relu6(x + 3) / 6 (Keras 2's was 0.2 x + 0.5, clipped)."""
    return _unary("hard_sigmoid", x)


# ---- functions without a native kernel: eager only (a layer given one raises) --------------

def _np_fn(x, fn, formula, ints="error"):
    a = _floats(x, fn, ints)
    w = a.astype(np.float32) if a.dtype == np.float16 else a
    return as_tensor(np.asarray(formula(w)).astype(a.dtype, copy=False))


def exponential(x):
    return _np_fn(x, "exponential", np.exp, ints="float32")


def mish(x):
    """x * tanh(softplus(x))."""
    return _np_fn(x, "mish", lambda a: a * np.tanh(_softplus_np(a)))


def hard_silu(x):
    """x * relu6(x + 3) / 6."""
    return _np_fn(x, "hard_silu", lambda a: a * _FORMULAS["hard_sigmoid"](a))


hard_swish = hard_silu


def log_sigmoid(x):
    """-softplus(-x)."""
    return _np_fn(x, "log_sigmoid", lambda a: -_softplus_np(-a))


def celu(x, alpha=1.0):
    """max(x, 0) + alpha * expm1(min(x, 0) / alpha)."""
    alpha = _number(alpha, "celu", "alpha")
    return _np_fn(x, "celu", lambda a: np.maximum(a, _c(0, a)) + _c(alpha, a) *
                  np.expm1(np.minimum(a, _c(0, a)) / _c(alpha, a)))


def hard_tanh(x):
    return _np_fn(x, "hard_tanh", lambda a: np.clip(a, _c(-1, a), _c(1, a)))


def tanh_shrink(x):
    return _np_fn(x, "tanh_shrink", lambda a: a - np.tanh(a))


def soft_shrink(x, threshold=0.5):
    """x - threshold above threshold, x + threshold below -threshold, 0 between."""
    t = _number(threshold, "soft_shrink", "threshold")
    return _np_fn(x, "soft_shrink", lambda a: np.where(
        a > t, a - _c(t, a), np.where(a < -t, a + _c(t, a), _c(0, a))), ints="keep")


def hard_shrink(x, threshold=0.5):
    """x where |x| > threshold, else 0."""
    t = _number(threshold, "hard_shrink", "threshold")
    return _np_fn(x, "hard_shrink", lambda a: np.where(np.abs(a) > t, a, _c(0, a)))


def sparse_plus(x):
    """0 for x <= -1, (x + 1)^2 / 4 for -1 < x < 1, x for x >= 1."""
    return _np_fn(x, "sparse_plus", lambda a: np.where(
        a <= -1, _c(0, a), np.where(a < 1, _c(0.25, a) * (a + _c(1, a)) ** 2, a)))


def sparse_sigmoid(x):
    """0 for x <= -1, (x + 1) / 2 for -1 < x < 1, 1 for x >= 1."""
    return _np_fn(x, "sparse_sigmoid", lambda a: np.where(
        a <= -1, _c(0, a), np.where(a >= 1, _c(1, a), _c(0.5, a) * (a + _c(1, a)))))


def squareplus(x, b=4):
    """(x + sqrt(x^2 + b)) / 2."""
    b = _number(b, "squareplus", "b")
    return _np_fn(x, "squareplus", lambda a: (a + np.sqrt(a * a + _c(b, a))) / _c(2, a))


def threshold(x, threshold, default_value):
    """x where x > threshold, else default_value."""
    t = _number(threshold, "threshold", "threshold")
    d = _number(default_value, "threshold", "default_value")
    return _np_fn(x, "threshold", lambda a: np.where(a > t, a, _c(d, a)))


def glu(x, axis=-1):
    """a * sigmoid(b) for the two halves a, b of `x` along `axis`."""
    a0 = _floats(x, "glu")
    ax = _axes(axis, a0.ndim, "glu")
    if len(ax) != 1:
        raise TypeError(f"glu: axis must be an int, got {axis!r}")
    if a0.shape[ax[0]] % 2 != 0:
        raise ValueError(f"axis size must be divisible by 2. Received: x.shape={a0.shape} with "
                         f"axis={axis}")

    def formula(a):
        x1, x2 = np.split(a, 2, axis=ax[0])
        return x1 * _sigmoid_np(x2)
    return _np_fn(a0, "glu", formula)


for _f in (linear, relu, sigmoid, tanh, softmax, elu, selu, gelu, silu, softplus, softsign,
           leaky_relu, relu6, hard_sigmoid, log_softmax):
    _f._cnnfast_activation = _f.__name__
for _f in (exponential, mish, hard_silu, log_sigmoid, celu, hard_tanh, tanh_shrink,
           soft_shrink, hard_shrink, sparse_plus, sparse_sigmoid, squareplus, threshold, glu):
    _f._cnnfast_no_kernel = _f.__name__
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
    name = getattr(identifier, "_cnnfast_no_kernel", None)
    if name is not None:
        raise NotImplementedError(
            f"activation {name!r} is not supported in a layer by cnnfast (no native kernel; "
            f"keras.activations.{name}(x) computes it eagerly); supported: "
            f"{sorted(backend.ACTIVATIONS)}")
    if callable(identifier):
        label = getattr(identifier, "__qualname__", None) or repr(identifier)
        raise NotImplementedError(
            f"activation={label!r} ({identifier!r}): cnnfast runs native kernels and cannot "
            f"differentiate an arbitrary callable; use one of {sorted(backend.ACTIVATIONS)} "
            "(as a string, cnnfast.activations.X or cnnfast.nn.X), or an activation layer with "
            "arguments (keras.layers.ReLU(max_value=...), LeakyReLU, ELU, Softmax(axis=...))")
    raise TypeError(f"activation must be a string, callable or None, got {identifier!r}")
