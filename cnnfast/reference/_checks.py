"""Input validation shared by the reference kernels: every failure is a clear ValueError."""
import numbers

import numpy as np


def as_float_array(x, name, ndim=None, dtype=np.float64):
    """Return `x` as a floating ndarray of `dtype` (a copy only when needed); check its rank."""
    if x is None:
        raise ValueError(f"{name} must be an array, got None")
    a = np.asarray(x)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)
            or a.dtype == np.bool_):
        raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    return a.astype(dtype, copy=False)


def pair(v, name):
    """An int or a pair of ints, each >= 1, as a tuple (a, b)."""
    if isinstance(v, numbers.Integral):
        v = (v, v)
    try:
        a, b = v
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}") from None
    if not (isinstance(a, numbers.Integral) and isinstance(b, numbers.Integral)):
        raise ValueError(f"{name} must contain ints, got {v!r}")
    if a < 1 or b < 1:
        raise ValueError(f"{name} must be positive, got {v!r}")
    return int(a), int(b)


def padding_of(padding):
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    return padding.lower()


def same_shape(a, b, name_a, name_b):
    if a.shape != b.shape:
        raise ValueError(f"{name_a} has shape {a.shape} but {name_b} has shape {b.shape}")
