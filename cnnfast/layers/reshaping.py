"""Rescaling, Reshape and ZeroPadding2D."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import backend
from ._util import check_data_format
from .base import Layer, shape_str


class Rescaling(Layer):
    """y = x * scale + offset, in float32 (the multiply, then the add, as Keras).

    Args: scale, offset (Python numbers; per-channel arrays raise NotImplementedError).
    Input shape: any. Output shape: the input's.
    """

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        where = f"Rescaling '{self.name}'"
        for arg, v in (("scale", scale), ("offset", offset)):
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                if isinstance(v, (list, tuple, np.ndarray)):
                    raise NotImplementedError(f"{where}: {arg} must be a number; per-channel "
                                              f"{arg} arrays are not supported by cnnfast")
                raise TypeError(f"{where}: {arg} must be a number, got {v!r}")
        self.scale = float(scale)
        self.offset = float(offset)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training):
        y = self._buffer("y", x.shape)
        backend.rescale_forward(y, x, self.scale, self.offset)
        return y

    def backward(self, dout, need_dinp=True, dout_is_dlogits=False):
        if not need_dinp:
            return None
        dx = self._buffer("dx", dout.shape)
        backend.rescale_backward(dx, np.ascontiguousarray(dout, dtype=np.float32), self.scale)
        return dx

    def get_config(self):
        c = super().get_config()
        c.update(scale=self.scale, offset=self.offset)
        return c


class Reshape(Layer):
    """Row-major reshape of each sample to target_shape; one entry may be -1 (inferred).

    Input shape: (batch, ...). Output shape: (batch,) + target_shape.
    """

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        where = f"Reshape '{self.name}'"
        try:
            t = tuple(target_shape)
        except TypeError:
            raise TypeError(f"{where}: target_shape must be a tuple of ints, got "
                            f"{target_shape!r}") from None
        if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in t):
            raise TypeError(f"{where}: target_shape must be a tuple of ints, got {target_shape!r}")
        t = tuple(int(d) for d in t)
        if t.count(-1) > 1 or any(d == 0 or d < -1 for d in t):
            raise ValueError(f"{where}: target_shape must hold positive sizes and at most one "
                             f"-1, got {t}")
        self.target_shape = t

    def _resolved(self, input_shape):
        if any(d is None for d in input_shape[1:]):
            raise ValueError(f"Reshape '{self.name}': all non-batch sizes must be known, got "
                             f"{shape_str(input_shape)}")
        n = math.prod(input_shape[1:])
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            if n % known:
                raise ValueError(f"Reshape '{self.name}': cannot reshape "
                                 f"{shape_str(input_shape)} to {self.target_shape}")
            return tuple(n // known if d == -1 else d for d in self.target_shape)
        if known != n:
            raise ValueError(f"Reshape '{self.name}': total size of the input "
                             f"{shape_str(input_shape)} ({n}) differs from target_shape "
                             f"{self.target_shape} ({known})")
        return self.target_shape

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._resolved(tuple(input_shape))

    def forward(self, x, training):
        self._x_shape = x.shape
        return x.reshape((x.shape[0],) + self._resolved(x.shape))

    def backward(self, dout, need_dinp=True, dout_is_dlogits=False):
        return dout.reshape(self._x_shape)

    def get_config(self):
        c = super().get_config()
        c.update(target_shape=self.target_shape)
        return c


class ZeroPadding2D(Layer):
    """Zeros around the H and W axes of a (batch, H, W, C) input.

    Args: padding: int p (p on every side), (h, w) (h top and bottom, w left and right) or
    ((top, bottom), (left, right)); data_format ('channels_last' only).
    Output shape: (batch, top + H + bottom, left + W + right, C).
    """

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        where = f"ZeroPadding2D '{self.name}'"
        check_data_format(data_format, where)
        self.padding = _pads_2d(padding, where)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4 or any(d is None for d in input_shape[1:]):
            raise ValueError(f"Input of layer '{self.name}' (ZeroPadding2D) must have rank 4 "
                             f"(batch, height, width, channels) with known sizes, found shape "
                             f"{shape_str(input_shape)}")
        (t, b), (left, r) = self.padding
        return (input_shape[0], input_shape[1] + t + b, input_shape[2] + left + r,
                input_shape[3])

    def forward(self, x, training):
        self._x_shape = x.shape
        y = self._buffer("y", (x.shape[0],) + self.compute_output_shape(x.shape)[1:])
        backend.zeropad2d_forward(y, x, self.padding)
        return y

    def backward(self, dout, need_dinp=True, dout_is_dlogits=False):
        if not need_dinp:
            return None
        dx = self._buffer("dx", self._x_shape)
        backend.zeropad2d_backward(dx, np.ascontiguousarray(dout, dtype=np.float32), self.padding)
        return dx

    def get_config(self):
        c = super().get_config()
        c.update(padding=self.padding, data_format="channels_last")
        return c


def _pads_2d(padding, where):
    """Keras's three spellings -> ((top, bottom), (left, right)), each a non-negative int."""
    def is_int(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    msg = (f"{where}: padding must be an int, a tuple of 2 ints or a tuple of 2 tuples of 2 "
           f"ints, got {padding!r}")
    if is_int(padding):
        pads = ((padding, padding), (padding, padding))
    else:
        try:
            p = tuple(padding)
        except TypeError:
            raise TypeError(msg) from None
        if len(p) != 2:
            raise ValueError(msg)
        if all(is_int(v) for v in p):
            pads = ((p[0], p[0]), (p[1], p[1]))
        else:
            try:
                pads = tuple(tuple(v) for v in p)
            except TypeError:
                raise ValueError(msg) from None
            if any(len(v) != 2 or not all(is_int(u) for u in v) for v in pads):
                raise ValueError(msg)
    if any(v < 0 for pair in pads for v in pair):
        raise ValueError(f"{where}: padding must be >= 0, got {padding!r}")
    return tuple(tuple(int(v) for v in pair) for pair in pads)
