"""Reference Conv2D (cross-correlation, no kernel flip), NHWC, TF/Keras padding rules.

Shapes:
    x  (N, H, W, C)        input
    w  (KH, KW, C, OC)     kernel (Keras layout)
    b  (OC,) or None       bias
    y  (N, OH, OW, OC)     output
    y[n, i, j, o] = b[o] + sum_{di, dj, c} xpad[n, i*SH + di, j*SW + dj, c] * w[di, dj, c, o]
where xpad is x zero-padded with (pad_before, pad_after) rows/cols from `conv_output_size`.

The implementation is im2col built from a strided window view (no Python loop over pixels)
followed by one matrix product. Arithmetic is float64 by default (this is the test oracle);
pass ``dtype=np.float32`` for a float32 NumPy baseline.
"""
import numbers

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._checks import as_float_array, padding_of, pair

__all__ = ["conv_output_size", "conv2d_forward", "conv2d_backward"]


def conv_output_size(in_size, k, s, padding):
    """Output size and padding of one spatial axis, exactly as TF computes them.

    valid: out = floor((in - k) / s) + 1, no padding (requires in >= k).
    same:  out = ceil(in / s); total = max(0, (out - 1) * s + k - in);
           pad_before = total // 2, pad_after = total - pad_before (the odd pixel goes at the END).

    Returns (out, pad_before, pad_after).
    """
    for name, v in (("in_size", in_size), ("k", k), ("s", s)):
        if not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    padding = padding_of(padding)
    if padding == "valid":
        if in_size < k:
            raise ValueError(f"window {k} larger than input {in_size} with padding='valid'")
        return (in_size - k) // s + 1, 0, 0
    out = -(-in_size // s)
    total = max(0, (out - 1) * s + k - in_size)
    return out, total // 2, total - total // 2


def _geometry(x_shape, kh, kw, strides, padding):
    """((OH, pt, pb), (OW, pl, pr)) for an (N, H, W, C) input."""
    _, H, W, _ = x_shape
    return (conv_output_size(H, kh, strides[0], padding),
            conv_output_size(W, kw, strides[1], padding))


def _check_conv_args(x, w, strides, padding, dtype):
    x = as_float_array(x, "x", 4, dtype)
    w = as_float_array(w, "w", 4, dtype)
    if w.shape[2] != x.shape[3]:
        raise ValueError(f"w {w.shape} expects {w.shape[2]} input channels but x has shape "
                         f"{x.shape}")
    if 0 in x.shape or 0 in w.shape:
        raise ValueError(f"empty array: x {x.shape}, w {w.shape}")
    return x, w, pair(strides, "strides"), padding_of(padding)


def _im2col(x, kh, kw, strides, geom):
    """(N*OH*OW, KH*KW*C) patch matrix; column index is (di*KW + dj)*C + c like the kernel."""
    (OH, pt, pb), (OW, pl, pr) = geom
    N, C = x.shape[0], x.shape[3]
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    win = sliding_window_view(xp, (kh, kw), axis=(1, 2))  # (N, H', W', C, KH, KW)
    win = win[:, ::strides[0], ::strides[1]][:, :OH, :OW]
    return win.transpose(0, 1, 2, 4, 5, 3).reshape(N * OH * OW, kh * kw * C)


def conv2d_forward(x, w, b=None, strides=(1, 1), padding="valid", dtype=np.float64):
    """y (N, OH, OW, OC) = conv(x (N, H, W, C), w (KH, KW, C, OC)) + b (OC,)."""
    x, w, strides, padding = _check_conv_args(x, w, strides, padding, dtype)
    KH, KW, C, OC = w.shape
    geom = _geometry(x.shape, KH, KW, strides, padding)
    cols = _im2col(x, KH, KW, strides, geom)
    y = cols @ w.reshape(KH * KW * C, OC)
    if b is not None:
        b = as_float_array(b, "b", 1, dtype)
        if b.shape != (OC,):
            raise ValueError(f"b has shape {b.shape}, expected ({OC},)")
        y += b
    return y.reshape(x.shape[0], geom[0][0], geom[1][0], OC)


def conv2d_backward(dy, x, w, strides=(1, 1), padding="valid", dtype=np.float64):
    """Gradients of conv2d_forward: returns (dx (N,H,W,C), dw (KH,KW,C,OC), db (OC,)).

    dy is (N, OH, OW, OC). db is the gradient of the bias (whether or not one was used).
    """
    x, w, strides, padding = _check_conv_args(x, w, strides, padding, dtype)
    N, H, W, C = x.shape
    KH, KW, _, OC = w.shape
    geom = _geometry(x.shape, KH, KW, strides, padding)
    (OH, pt, pb), (OW, pl, pr) = geom
    dy = as_float_array(dy, "dy", 4, dtype)
    if dy.shape != (N, OH, OW, OC):
        raise ValueError(f"dy has shape {dy.shape}, expected {(N, OH, OW, OC)}")
    dy2 = dy.reshape(N * OH * OW, OC)
    cols = _im2col(x, KH, KW, strides, geom)
    dw = (cols.T @ dy2).reshape(KH, KW, C, OC)
    db = dy2.sum(axis=0)
    # col2im: scatter-add each kernel tap's (N, OH, OW, C) slab into the padded input grid.
    dcols = (dy2 @ w.reshape(KH * KW * C, OC).T).reshape(N, OH, OW, KH, KW, C)
    dxp = np.zeros((N, H + pt + pb, W + pl + pr, C), dtype=dy2.dtype)
    sh, sw = strides
    for di in range(KH):
        for dj in range(KW):
            rows = slice(di, di + sh * (OH - 1) + 1, sh)
            cols_ = slice(dj, dj + sw * (OW - 1) + 1, sw)
            dxp[:, rows, cols_] += dcols[:, :, :, di, dj]
    dx = dxp[:, pt:pt + H, pl:pl + W]
    return np.ascontiguousarray(dx), dw, db
