"""Reference inverted dropout with an explicit keep mask.

    dropout_forward(x, mask, rate)   -> y  = x * mask / (1 - rate)
    dropout_backward(dy, mask, rate) -> dx = dy * mask / (1 - rate)
x, dy, mask: same shape (any); mask holds 0/1 (bool or integers, e.g. the uint8 mask that
cnnfast._core.dropout_forward writes); rate in [0, 1). The random draw itself is the kernel's
business (a counter hash); this module checks what is done with the mask.
Arithmetic is float64 by default.
"""
import numbers

import numpy as np

from ._checks import as_float_array, same_shape

__all__ = ["dropout_forward", "dropout_backward"]


def _args(a, name, mask, rate, dtype):
    a = as_float_array(a, name, None, dtype)
    m = np.asarray(mask)
    if not (m.dtype == np.bool_ or np.issubdtype(m.dtype, np.integer)):
        raise ValueError(f"mask must be bool or integer 0/1, got dtype {m.dtype}")
    same_shape(a, m, name, "mask")
    if m.size and not np.isin(m, (0, 1)).all():
        raise ValueError("mask must contain only 0 and 1")
    if not isinstance(rate, numbers.Real) or not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be in [0, 1), got {rate!r}")
    return a, m.astype(dtype), float(rate)


def dropout_forward(x, mask, rate, dtype=np.float64):
    """y = x * mask / (1 - rate), same shape as x."""
    x, m, rate = _args(x, "x", mask, rate, dtype)
    return x * m / (1.0 - rate)


def dropout_backward(dy, mask, rate, dtype=np.float64):
    """dx = dy * mask / (1 - rate), same shape as dy."""
    dy, m, rate = _args(dy, "dy", mask, rate, dtype)
    return dy * m / (1.0 - rate)
