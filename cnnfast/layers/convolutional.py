"""Conv2D (NHWC, kernel (kh, kw, in, out), TF padding rules)."""
from __future__ import annotations

from .. import backend, initializers
from ._util import (
    FusedActivation,
    check_data_format,
    normalize_padding,
    normalize_tuple,
    reject_unsupported,
    serialize_initializer,
)
from .base import Layer, shape_str


class Conv2D(FusedActivation, Layer):
    """2-D convolution (cross-correlation), as keras.layers.Conv2D.

    Args: filters, kernel_size, strides=(1, 1), padding='valid' | 'same', activation=None,
        use_bias=True, kernel_initializer='glorot_uniform', bias_initializer='zeros'.
    Input shape: (batch, height, width, channels).
    Output shape: (batch, new_height, new_width, filters); 'same' gives ceil(in / stride).
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        where = f"Conv2D '{self.name}'"
        if isinstance(filters, bool) or not isinstance(filters, int) or filters <= 0:
            raise ValueError(f"{where}: filters must be a positive int, got {filters!r}")
        self.filters = filters
        self.kernel_size = normalize_tuple(kernel_size, 2, "kernel_size", where)
        self.strides = normalize_tuple(strides, 2, "strides", where)
        self.padding = normalize_padding(padding, where)
        check_data_format(data_format, where)
        if normalize_tuple(dilation_rate, 2, "dilation_rate", where) != (1, 1):
            raise NotImplementedError(f"{where}: dilation_rate={dilation_rate!r} is not supported")
        self._set_regularizers(activity_regularizer, kernel=kernel_regularizer,
                               bias=bias_regularizer)
        reject_unsupported(where, groups=(groups, 1), kernel_constraint=(kernel_constraint, None),
                           bias_constraint=(bias_constraint, None))
        self._init_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def _check_input_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"Input of layer '{self.name}' (Conv2D) must have rank 4 "
                             f"(batch, height, width, channels), found shape "
                             f"{shape_str(input_shape)}")
        if any(d is None for d in input_shape[1:]):
            raise ValueError(f"Conv2D '{self.name}': spatial and channel sizes must be known, "
                             f"got {shape_str(input_shape)}")

    def build(self, input_shape):
        kh, kw = self.kernel_size
        self.kernel = self._add_weight((kh, kw, input_shape[-1], self.filters),
                                       self.kernel_initializer)
        self.bias = self._add_weight((self.filters,), self.bias_initializer) \
            if self.use_bias else None

    def compute_output_shape(self, input_shape):
        self._check_input_shape(tuple(input_shape))
        try:
            g = backend.conv2d_geometry((1,) + tuple(input_shape[1:]),
                                        self.kernel_size + (input_shape[-1], self.filters),
                                        self.strides, self.padding)
        except ValueError as e:
            raise ValueError(f"Conv2D '{self.name}': input {shape_str(input_shape)} does not fit "
                             f"kernel_size={self.kernel_size}, strides={self.strides}, "
                             f"padding='{self.padding}': {e}") from None
        return (input_shape[0],) + tuple(g["out_shape"][1:])

    def forward(self, x, training):
        self._x = x
        out_shape = (x.shape[0],) + self.compute_output_shape(x.shape)[1:]
        z = self._buffer("z", out_shape)
        g = backend.conv2d_geometry(x.shape, self.kernel.shape, self.strides, self.padding)
        backend.conv2d_forward(z, x, self.kernel, self.bias, self.strides, self.padding,
                               backend.workspace.get(g["workspace"]))
        return self._activity(self._act_forward(z))

    def backward(self, dout, need_dinp=True, dout_is_dlogits=False):
        dout = self._activity_backward(dout, dout_is_dlogits)
        dz = self._act_backward(dout, dout_is_dlogits)
        x = self._x
        dx = self._buffer("dx", x.shape) if need_dinp else None
        g = backend.conv2d_geometry(x.shape, self.kernel.shape, self.strides, self.padding)
        backend.conv2d_backward(dx, self.grads[0], self.grads[1] if self.use_bias else None, dz,
                                x, self.kernel, self.strides, self.padding,
                                backend.workspace.get(g["workspace"]))
        return dx

    def get_config(self):
        c = super().get_config()
        c.update(filters=self.filters, kernel_size=self.kernel_size,
                 strides=self.strides, padding=self.padding, data_format="channels_last",
                 dilation_rate=(1, 1), activation=self.activation, use_bias=self.use_bias,
                 kernel_initializer=serialize_initializer(self.kernel_initializer),
                 bias_initializer=serialize_initializer(self.bias_initializer))
        return c
