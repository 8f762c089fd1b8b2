"""`tf.Tensor` for scripts that `import cnnfast as tf`: a NumPy array with `.numpy()`.

`Tensor` is an `ndarray` subclass that adds only what TensorFlow's eager tensors have and
arrays lack: `.numpy()` and TF's printed form (`tf.Tensor([1 2], shape=(2,), dtype=int32)`).
Everything else is NumPy: `t.shape` is a tuple, `t.dtype` a NumPy dtype, arithmetic and
`np.asarray(t)` work as on any array, and the layers and `fit` take Tensors as arrays. Results
of arithmetic on a Tensor stay Tensors, 0-d ones included, so `(t * 2)[0].numpy()` works as
in TF.

The dtypes (`tf.float32`, `tf.int32`, `tf.uint8`, ...) are NumPy dtypes. `constant`,
`convert_to_tensor` and `cast` infer and convert dtypes as TF does: Python floats become
float32 and Python ints int32 (int64 when they do not fit), NumPy arrays keep their dtype.
"""
from __future__ import annotations

import numpy as np

# tf.<dtype> names -> NumPy dtypes (cnnfast/__init__.py re-exports them, `bool` included).
DTYPES = {
    "float16": np.dtype(np.float16), "half": np.dtype(np.float16),
    "float32": np.dtype(np.float32), "float64": np.dtype(np.float64),
    "double": np.dtype(np.float64),
    "int8": np.dtype(np.int8), "int16": np.dtype(np.int16), "int32": np.dtype(np.int32),
    "int64": np.dtype(np.int64),
    "uint8": np.dtype(np.uint8), "uint16": np.dtype(np.uint16), "uint32": np.dtype(np.uint32),
    "uint64": np.dtype(np.uint64),
    "bool": np.dtype(np.bool_),
    "complex64": np.dtype(np.complex64), "complex128": np.dtype(np.complex128),
}

_INT32 = np.iinfo(np.int32)


class Tensor(np.ndarray):
    """A NumPy array with TensorFlow's `.numpy()` and printed form (see the module doc)."""

    def numpy(self):
        """The values as a plain ndarray (a NumPy scalar for a 0-d tensor, as in TF)."""
        a = self.view(np.ndarray)
        return a[()] if a.ndim == 0 else a

    def __array_wrap__(self, arr, context=None, return_scalar=False):
        # NumPy would return a scalar for 0-d results; TF returns a tensor.
        return np.asarray(arr).view(Tensor)

    def __getitem__(self, key):
        out = super().__getitem__(key)
        return out if isinstance(out, np.ndarray) else np.asarray(out).view(Tensor)

    def _text(self, is_repr):
        a = self.view(np.ndarray)
        text = str(a[()]) if a.ndim == 0 else (repr(a) if is_repr else str(a))
        return "\n" + text if "\n" in text else text

    def __repr__(self):
        return (f"<tf.Tensor: shape={self.shape}, dtype={self.dtype.name}, "
                f"numpy={self._text(True)}>")

    def __str__(self):
        return f"tf.Tensor({self._text(False)}, shape={self.shape}, dtype={self.dtype.name})"


def as_tensor(a):
    """`a` (array-like) as a Tensor view, without a copy where `a` is already an array."""
    return np.asarray(a).view(Tensor)


def as_dtype(dtype):
    """A NumPy dtype for a tf-style dtype, a dtype string or a NumPy/Python type."""
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    try:
        return np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"cannot interpret {dtype!r} as a dtype") from e


def _inferred(value):
    """The array TF would make of `value` without a dtype: NumPy values keep their dtype;
    Python floats become float32, Python ints int32 (int64 if they do not fit)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return np.asarray(value)
    a = np.asarray(value)
    if a.dtype == np.float64:
        return a.astype(np.float32)
    if a.dtype.kind == "i":
        fits = a.size == 0 or (a.min() >= _INT32.min and a.max() <= _INT32.max)
        return a.astype(np.int32 if fits else np.int64)
    return a


def _converted(value, dtype):
    a = _inferred(value)
    if dtype is None:
        return a
    dtype = as_dtype(dtype)
    if dtype.kind in "iub" and a.dtype.kind == "f" and \
            not isinstance(value, (np.ndarray, np.generic)):
        # TF refuses Python floats for an integer tensor, even 2.0 (cast() converts them)
        raise TypeError(f"Cannot convert {value!r} to EagerTensor of dtype {dtype.name}")
    return a.astype(dtype, copy=False)


def constant(value, dtype=None, shape=None, name=None):
    """A Tensor of `value` (tf.constant): dtype inferred as TF does unless given; `shape`
    fills it with a scalar or reshapes values with as many elements."""
    a = _converted(value, dtype)
    if shape is not None:
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)
        if a.size == 1:
            a = np.full(shape, a.reshape(()), dtype=a.dtype)
        elif a.size == int(np.prod(shape)):
            a = a.reshape(shape)
        else:
            raise TypeError(f"tf.constant: {a.size} values do not fill shape {shape}")
    return as_tensor(np.array(a))  # a copy, as TF's constant owns its values


def convert_to_tensor(value, dtype=None, dtype_hint=None, name=None):
    """`value` as a Tensor (tf.convert_to_tensor). A Tensor is returned as it is; asking for
    another dtype than a Tensor's is a ValueError, as in TF (use `cast`)."""
    if isinstance(value, Tensor):
        if dtype is not None and as_dtype(dtype) != value.dtype:
            raise ValueError(f"Tensor conversion requested dtype {as_dtype(dtype).name} for "
                             f"Tensor with dtype {value.dtype.name}")
        return value
    if dtype is None and dtype_hint is not None and not isinstance(value, np.ndarray):
        try:
            return as_tensor(_converted(value, dtype_hint))
        except (TypeError, ValueError):
            pass  # a hint only: fall back to the inferred dtype
    return as_tensor(_converted(value, dtype))


def cast(x, dtype, name=None):
    """`x` converted to `dtype` (tf.cast): floats to integers truncate toward zero, nonzero
    values become True, complex to real keeps the real part."""
    a = _inferred(x)
    dtype = as_dtype(dtype)
    if a.dtype.kind == "c" and dtype.kind != "c":
        a = a.real
    return as_tensor(a.astype(dtype))
