"""The small `tf.*` array functions tutorials call (`tf.expand_dims`, `tf.one_hot`,
`tf.argmax`, `tf.reduce_mean`, ...), on NumPy, with TF's semantics: output dtypes, the
default axis of `argmax` (0), integer means that truncate toward zero, reductions over an
empty axis. Each returns a `cnnfast.tensor.Tensor`."""
from __future__ import annotations

import numpy as np

from .tensor import as_dtype, as_tensor, convert_to_tensor


def _axis(axis):
    if axis is None:
        return None
    a = np.asarray(axis)
    return int(a) if a.ndim == 0 else tuple(int(i) for i in a.ravel())


def expand_dims(input, axis, name=None):
    """`input` with a new axis of size 1 at `axis` (negative counts from the end)."""
    return as_tensor(np.expand_dims(convert_to_tensor(input), int(axis)))


def one_hot(indices, depth, on_value=None, off_value=None, axis=None, dtype=None, name=None):
    """One-hot rows of `depth` values for `indices`; indices outside [0, depth) give rows of
    `off_value`. The dtype is `dtype`, else on_value's/off_value's, else float32."""
    idx = convert_to_tensor(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"one_hot: indices must be integers, got dtype {idx.dtype}")
    if dtype is None:
        given = [convert_to_tensor(v) for v in (on_value, off_value) if v is not None]
        dtype = given[0].dtype if given else np.float32
    dtype = as_dtype(dtype)
    on = np.asarray(1 if on_value is None else on_value, dtype)
    off = np.asarray(0 if off_value is None else off_value, dtype)
    out = np.where(idx[..., None].view(np.ndarray) == np.arange(int(depth)), on, off)
    if axis is not None and axis != -1:
        out = np.moveaxis(out, -1, axis)
    return as_tensor(out.astype(dtype, copy=False))


def argmax(input, axis=None, output_type=np.int64, name=None):
    """Index of the largest value along `axis` (0 when None, as TF); the first on ties."""
    x = convert_to_tensor(input).view(np.ndarray)
    return as_tensor(np.argmax(x, axis=0 if axis is None else int(axis)).astype(output_type))


def argmin(input, axis=None, output_type=np.int64, name=None):
    """Index of the smallest value along `axis` (0 when None, as TF); the first on ties."""
    x = convert_to_tensor(input).view(np.ndarray)
    return as_tensor(np.argmin(x, axis=0 if axis is None else int(axis)).astype(output_type))


def reduce_sum(input_tensor, axis=None, keepdims=False, name=None):
    """Sum over `axis` (all axes when None), in the input's dtype."""
    x = convert_to_tensor(input_tensor).view(np.ndarray)
    dtype = x.dtype if x.dtype.kind in "iufc" else None
    return as_tensor(np.sum(x, axis=_axis(axis), keepdims=keepdims, dtype=dtype))


def reduce_mean(input_tensor, axis=None, keepdims=False, name=None):
    """Mean over `axis` in the input's dtype. For integers, the sum divided by the count
    truncated toward zero (TF's integer division): reduce_mean([1, 2]) is 1, of [-1, -2] -1."""
    x = convert_to_tensor(input_tensor).view(np.ndarray)
    axis = _axis(axis)
    if x.dtype.kind in "iu":
        total = np.sum(x, axis=axis, keepdims=keepdims, dtype=np.int64)
        count = max(1, x.size // max(1, total.size)) if x.size else 1
        mean = np.sign(total) * (np.abs(total) // count)
        return as_tensor(mean.astype(x.dtype))
    with np.errstate(invalid="ignore", divide="ignore"):
        if x.size == 0:
            return as_tensor(np.full(np.sum(x, axis=axis, keepdims=keepdims).shape, np.nan,
                                     x.dtype))
        return as_tensor(np.mean(x, axis=axis, keepdims=keepdims, dtype=x.dtype))


def _lowest(dtype, largest):
    if dtype.kind == "b":
        return not largest
    if dtype.kind == "f":
        return -np.inf if largest else np.inf
    info = np.iinfo(dtype)
    return info.min if largest else info.max


def reduce_max(input_tensor, axis=None, keepdims=False, name=None):
    """Largest value over `axis`; over an empty axis the dtype's lowest value (-inf), as TF."""
    x = convert_to_tensor(input_tensor).view(np.ndarray)
    return as_tensor(np.max(x, axis=_axis(axis), keepdims=keepdims,
                            initial=_lowest(x.dtype, True)))


def reduce_min(input_tensor, axis=None, keepdims=False, name=None):
    """Smallest value over `axis`; over an empty axis the dtype's highest value (inf)."""
    x = convert_to_tensor(input_tensor).view(np.ndarray)
    return as_tensor(np.min(x, axis=_axis(axis), keepdims=keepdims,
                            initial=_lowest(x.dtype, False)))
