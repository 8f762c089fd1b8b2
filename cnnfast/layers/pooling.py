"""MaxPooling2D and AveragePooling2D (NHWC, TF padding rules); GlobalAveragePooling2D and
GlobalMaxPooling2D."""
from __future__ import annotations

import numpy as np

from .. import backend
from ._util import check_data_format, normalize_padding, normalize_tuple
from .base import Layer, shape_str


class _Pooling2D(Layer):
    _kind = ""

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(**kwargs)
        where = f"{type(self).__name__} '{self.name}'"
        self.pool_size = normalize_tuple(pool_size, 2, "pool_size", where)
        self.strides = self.pool_size if strides is None else \
            normalize_tuple(strides, 2, "strides", where)
        self.padding = normalize_padding(padding, where)
        check_data_format(data_format, where)

    def _check_input_shape(self, input_shape):
        if len(input_shape) != 4 or any(d is None for d in input_shape[1:]):
            raise ValueError(f"Input of layer '{self.name}' ({type(self).__name__}) must have "
                             f"rank 4 (batch, height, width, channels) with known sizes, found "
                             f"shape {shape_str(input_shape)}")

    def compute_output_shape(self, input_shape):
        self._check_input_shape(tuple(input_shape))
        try:
            g = backend.pool2d_geometry((1,) + tuple(input_shape[1:]), self.pool_size,
                                        self.strides, self.padding)
        except ValueError as e:
            raise ValueError(f"{type(self).__name__} '{self.name}': input "
                             f"{shape_str(input_shape)} does not fit pool_size={self.pool_size}, "
                             f"strides={self.strides}, padding='{self.padding}': {e}") from None
        return (input_shape[0],) + tuple(g["out_shape"][1:])

    def get_config(self):
        c = super().get_config()
        c.update(pool_size=self.pool_size, strides=self.strides,
                 padding=self.padding, data_format="channels_last")
        return c


class MaxPooling2D(_Pooling2D):
    """Max pooling; strides default to pool_size; 'valid' drops trailing rows/cols."""

    def forward(self, x, training):
        self._x_shape = x.shape
        out_shape = (x.shape[0],) + self.compute_output_shape(x.shape)[1:]
        y = self._buffer("y", out_shape)
        self._argmax = self._buffer("argmax", out_shape, np.int32) if training else None
        backend.maxpool2d_forward(y, self._argmax, x, self.pool_size, self.strides, self.padding)
        return y

    def backward(self, dout, need_dinp=True, dout_is_dlogits=False):
        if self._argmax is None:
            raise RuntimeError(f"MaxPooling2D '{self.name}': backward without a training forward")
        dx = self._buffer("dx", self._x_shape)
        backend.maxpool2d_backward(dx, np.ascontiguousarray(dout, dtype=np.float32), self._argmax,
                                   self.pool_size, self.strides, self.padding)
        return dx


class AveragePooling2D(_Pooling2D):
    """Average pooling over the in-bounds cells of each window (TF excludes SAME padding)."""

    def forward(self, x, training):
        self._x_shape = x.shape
        out_shape = (x.shape[0],) + self.compute_output_shape(x.shape)[1:]
        y = self._buffer("y", out_shape)
        backend.avgpool2d_forward(y, x, self.pool_size, self.strides, self.padding)
        return y

    def backward(self, dout, need_dinp=True, dout_is_dlogits=False):
        dx = self._buffer("dx", self._x_shape)
        backend.avgpool2d_backward(dx, np.ascontiguousarray(dout, dtype=np.float32),
                                   self.pool_size, self.strides, self.padding)
        return dx


class _GlobalPooling2D(Layer):
    """Reduces H and W of a (batch, H, W, C) input (Keras: ops.mean / ops.max over axes 1, 2).

    Args: data_format ('channels_last' only), keepdims (keep H and W as sizes 1).
    Input shape: (batch, H, W, C). Output shape: (batch, C), or (batch, 1, 1, C) with keepdims.
    """

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        check_data_format(data_format, f"{type(self).__name__} '{self.name}'")
        if not isinstance(keepdims, (bool, np.bool_)):
            raise TypeError(f"{type(self).__name__} '{self.name}': keepdims must be a bool, got "
                            f"{keepdims!r}")
        self.keepdims = bool(keepdims)

    def _check_input_shape(self, input_shape):
        if len(input_shape) != 4 or any(d is None for d in input_shape[1:]):
            raise ValueError(f"Input of layer '{self.name}' ({type(self).__name__}) must have "
                             f"rank 4 (batch, height, width, channels) with known sizes, found "
                             f"shape {shape_str(input_shape)}")

    def compute_output_shape(self, input_shape):
        self._check_input_shape(tuple(input_shape))
        c = input_shape[3]
        return (input_shape[0], 1, 1, c) if self.keepdims else (input_shape[0], c)

    def forward(self, x, training):
        self._x = x
        y = self._buffer("y", (x.shape[0], x.shape[3]))  # (N, C)
        self._fwd(y, x)
        return y.reshape(x.shape[0], 1, 1, x.shape[3]) if self.keepdims else y

    def backward(self, dout, need_dinp=True, dout_is_dlogits=False):
        dx = self._buffer("dx", self._x.shape)
        dout = np.ascontiguousarray(dout, dtype=np.float32).reshape(self._x.shape[0], -1)
        self._bwd(dx, dout)
        return dx

    def get_config(self):
        c = super().get_config()
        c.update(data_format="channels_last", keepdims=self.keepdims)
        return c


class GlobalAveragePooling2D(_GlobalPooling2D):
    """Mean over H and W; its gradient is dout / (H*W) at every cell."""

    def _fwd(self, y, x):
        backend.global_avgpool2d_forward(y, x)

    def _bwd(self, dx, dout):
        backend.global_avgpool2d_backward(dx, dout)


class GlobalMaxPooling2D(_GlobalPooling2D):
    """Max over H and W; the gradient is split evenly among tied maxima (TF's reduce_max)."""

    def _fwd(self, y, x):
        backend.global_maxpool2d_forward(y, x)
        self._y = y

    def _bwd(self, dx, dout):
        backend.global_maxpool2d_backward(dx, dout, self._x, self._y)


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D
