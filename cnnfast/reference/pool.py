"""Reference MaxPooling2D / AveragePooling2D, NHWC, TF/Keras padding rules.

Shapes:
    x  (N, H, W, C)    input
    y  (N, OH, OW, C)  output; OH, OW from `conv_output_size(H, PH, SH, padding)` etc.
``strides=None`` means ``strides = pool_size`` (the Keras default).

SAME padding adds cells around the input that are *ignored*: they never win a max and are not
counted in an average (TF divides by the number of in-bounds cells of each window).
Max-pool backward sends each output gradient to the FIRST maximum of its window in row-major
(h, then w) scan order; overlapping windows add up. Arithmetic is float64 by default.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._checks import as_float_array, padding_of, pair
from .conv import conv_output_size

__all__ = ["maxpool2d_forward", "maxpool2d_backward", "maxpool2d_argmax",
           "avgpool2d_forward", "avgpool2d_backward", "global_avgpool2d_forward",
           "global_avgpool2d_backward", "global_maxpool2d_forward", "global_maxpool2d_backward"]


def _args(x, pool_size, strides, padding, dtype):
    x = as_float_array(x, "x", 4, dtype)
    if 0 in x.shape:
        raise ValueError(f"x must not be empty, got shape {x.shape}")
    pool_size = pair(pool_size, "pool_size")
    strides = pool_size if strides is None else pair(strides, "strides")
    padding = padding_of(padding)
    gh = conv_output_size(x.shape[1], pool_size[0], strides[0], padding)
    gw = conv_output_size(x.shape[2], pool_size[1], strides[1], padding)
    return x, pool_size, strides, (gh, gw)


def _windows(a, pool_size, strides, geom, fill):
    """(N, OH, OW, C, PH*PW) view of `a` padded with `fill`; last axis in row-major scan order."""
    (OH, pt, pb), (OW, pl, pr) = geom
    ap = np.pad(a, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=fill)
    win = sliding_window_view(ap, pool_size, axis=(1, 2))[:, ::strides[0], ::strides[1]]
    win = win[:, :OH, :OW]
    return win.reshape(win.shape[:4] + (pool_size[0] * pool_size[1],))


def _valid_mask(x_shape, pool_size, strides, geom):
    """(1, OH, OW, 1, PH*PW) bool: which window cells lie inside the input."""
    ones = np.ones((1, x_shape[1], x_shape[2], 1), dtype=bool)
    return _windows(ones, pool_size, strides, geom, False)


def _window_argmax(x, pool_size, strides, geom):
    """Index in [0, PH*PW) of the first in-bounds maximum of each window, (N, OH, OW, C)."""
    win = _windows(x, pool_size, strides, geom, -np.inf)
    valid = _valid_mask(x.shape, pool_size, strides, geom)
    # Take the max over in-bounds cells only, then the first in-bounds cell equal to it, so a
    # padded cell never wins even when the window's inputs are all -inf.
    mx = np.where(valid, win, -np.inf).max(axis=-1, keepdims=True)
    return np.argmax(valid & (win == mx), axis=-1)


def maxpool2d_forward(x, pool_size=(2, 2), strides=None, padding="valid", dtype=np.float64):
    """y (N, OH, OW, C): maximum over each window's in-bounds cells."""
    x, pool_size, strides, geom = _args(x, pool_size, strides, padding, dtype)
    return _windows(x, pool_size, strides, geom, -np.inf).max(axis=-1)


def maxpool2d_argmax(x, pool_size=(2, 2), strides=None, padding="valid"):
    """Winning input cell of each output as a flat spatial index h*W + w, int32 (N, OH, OW, C).

    This is what cnnfast._core.maxpool2d_forward writes into its `argmax` buffer.
    """
    x, pool_size, strides, geom = _args(x, pool_size, strides, padding, np.float64)
    (OH, pt, _), (OW, pl, _) = geom
    k = _window_argmax(x, pool_size, strides, geom)
    ih = np.arange(OH)[None, :, None, None] * strides[0] - pt + k // pool_size[1]
    iw = np.arange(OW)[None, None, :, None] * strides[1] - pl + k % pool_size[1]
    return (ih * x.shape[2] + iw).astype(np.int32)


def maxpool2d_backward(dy, x, pool_size=(2, 2), strides=None, padding="valid",
                       dtype=np.float64):
    """dx (N, H, W, C): each dy (N, OH, OW, C) added to its window's first maximum."""
    x, pool_size, strides, geom = _args(x, pool_size, strides, padding, dtype)
    N, H, W, C = x.shape
    (OH, _, _), (OW, _, _) = geom
    dy = as_float_array(dy, "dy", 4, dtype)
    if dy.shape != (N, OH, OW, C):
        raise ValueError(f"dy has shape {dy.shape}, expected {(N, OH, OW, C)}")
    flat = maxpool2d_argmax(x, pool_size, strides, padding).astype(np.int64)  # (N, OH, OW, C)
    dx = np.zeros((N, H * W, C), dtype=dy.dtype)
    n = np.arange(N)[:, None, None, None]
    c = np.arange(C)[None, None, None, :]
    np.add.at(dx, (n, flat, c), dy)  # add.at: overlapping windows may pick the same cell
    return dx.reshape(N, H, W, C)


def _avg_counts(x_shape, pool_size, strides, geom):
    """(1, OH, OW, 1) number of in-bounds cells of each window (TF's SAME divisor)."""
    return _valid_mask(x_shape, pool_size, strides, geom).sum(axis=-1)


def avgpool2d_forward(x, pool_size=(2, 2), strides=None, padding="valid", dtype=np.float64):
    """y (N, OH, OW, C): mean over each window's in-bounds cells."""
    x, pool_size, strides, geom = _args(x, pool_size, strides, padding, dtype)
    s = _windows(x, pool_size, strides, geom, 0.0).sum(axis=-1)
    return s / _avg_counts(x.shape, pool_size, strides, geom)


def avgpool2d_backward(dy, x, pool_size=(2, 2), strides=None, padding="valid",
                       dtype=np.float64):
    """dx (N, H, W, C): dy / count spread evenly over each window's in-bounds cells.

    Only x's shape is used; it is taken as an argument to mirror the other backward functions.
    """
    x, pool_size, strides, geom = _args(x, pool_size, strides, padding, dtype)
    N, H, W, C = x.shape
    (OH, pt, pb), (OW, pl, pr) = geom
    dy = as_float_array(dy, "dy", 4, dtype)
    if dy.shape != (N, OH, OW, C):
        raise ValueError(f"dy has shape {dy.shape}, expected {(N, OH, OW, C)}")
    g = dy / _avg_counts(x.shape, pool_size, strides, geom)
    dxp = np.zeros((N, H + pt + pb, W + pl + pr, C), dtype=g.dtype)
    (ph, pw), (sh, sw) = pool_size, strides
    for di in range(ph):
        for dj in range(pw):
            dxp[:, di:di + sh * (OH - 1) + 1:sh, dj:dj + sw * (OW - 1) + 1:sw] += g
    return np.ascontiguousarray(dxp[:, pt:pt + H, pl:pl + W])


# ---- Global pooling: reductions over H and W (Keras: ops.mean / ops.max over axes 1, 2) ----

def global_avgpool2d_forward(x, dtype=np.float64):
    """y (N, C): the mean over H and W."""
    return as_float_array(x, "x", 4, dtype).mean(axis=(1, 2))


def global_avgpool2d_backward(dy, x, dtype=np.float64):
    """dx (N, H, W, C) = dy / (H*W) at every cell (only x's shape is used)."""
    x = as_float_array(x, "x", 4, dtype)
    dy = as_float_array(dy, "dy", 2, dtype)
    N, H, W, C = x.shape
    return np.broadcast_to((dy / (H * W))[:, None, None, :], x.shape).copy()


def global_maxpool2d_forward(x, dtype=np.float64):
    """y (N, C): the max over H and W."""
    return as_float_array(x, "x", 4, dtype).max(axis=(1, 2))


def global_maxpool2d_backward(dy, x, dtype=np.float64):
    """dx (N, H, W, C): dy split evenly among the cells equal to the max (TF's reduce_max
    gradient; a max-pool window would give it all to the first)."""
    x = as_float_array(x, "x", 4, dtype)
    dy = as_float_array(dy, "dy", 2, dtype)
    hit = x == x.max(axis=(1, 2), keepdims=True)
    return hit * (dy[:, None, None, :] / hit.sum(axis=(1, 2), keepdims=True))
