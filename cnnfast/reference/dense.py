"""Reference Dense (fully connected) layer.

Shapes:
    x  (B, IN)     input
    w  (IN, OUT)   kernel (Keras layout)
    b  (OUT,) or None
    y  (B, OUT) = x @ w + b
Arithmetic is float64 by default.
"""
import numpy as np

from ._checks import as_float_array

__all__ = ["dense_forward", "dense_backward"]


def _args(x, w, dtype):
    x = as_float_array(x, "x", 2, dtype)
    w = as_float_array(w, "w", 2, dtype)
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"x {x.shape} does not match w {w.shape}")
    return x, w


def dense_forward(x, w, b=None, dtype=np.float64):
    """y (B, OUT) = x (B, IN) @ w (IN, OUT) + b (OUT,)."""
    x, w = _args(x, w, dtype)
    y = x @ w
    if b is not None:
        b = as_float_array(b, "b", 1, dtype)
        if b.shape != (w.shape[1],):
            raise ValueError(f"b has shape {b.shape}, expected ({w.shape[1]},)")
        y += b
    return y


def dense_backward(dy, x, w, dtype=np.float64):
    """Returns (dx (B, IN) = dy @ w.T, dw (IN, OUT) = x.T @ dy, db (OUT,) = sum_b dy)."""
    x, w = _args(x, w, dtype)
    dy = as_float_array(dy, "dy", 2, dtype)
    if dy.shape != (x.shape[0], w.shape[1]):
        raise ValueError(f"dy has shape {dy.shape}, expected {(x.shape[0], w.shape[1])}")
    return dy @ w.T, x.T @ dy, dy.sum(axis=0)
