"""Conv2D, DepthwiseConv2D and SeparableConv2D (NHWC, Keras weight layouts, TF padding rules).

Dilation: a kernel of k taps at rate d spans (k-1)*d+1 input cells, and the window geometry
('valid' and 'same' sizes and padding) is that of an undilated kernel of that effective size,
as in TF. Conv2D runs dilation 1 on its im2col/few-tap kernels and dilation > 1 on the
dilated kernel (csrc/conv2d_dilated_cpu.cpp): the choice is made once per call, here.
"""
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


def effective_kernel_size(kernel_size, dilation_rate):
    """The input span of a dilated kernel per axis: (k - 1) * d + 1."""
    return tuple((k - 1) * d + 1 for k, d in zip(kernel_size, dilation_rate))


def _dil_str(dilation_rate):
    return "" if dilation_rate == (1, 1) else f", dilation_rate={dilation_rate}"


def _check_rank4(layer, kind, input_shape):
    if len(input_shape) != 4:
        raise ValueError(f"Input of layer '{layer.name}' ({kind}) must have rank 4 "
                         f"(batch, height, width, channels), found shape "
                         f"{shape_str(input_shape)}")
    if any(d is None for d in input_shape[1:]):
        raise ValueError(f"{kind} '{layer.name}': spatial and channel sizes must be known, "
                         f"got {shape_str(input_shape)}")


def _positive_int(value, arg, where):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{where}: {arg} must be a positive int, got {value!r}")
    return value


class Conv2D(FusedActivation, Layer):
    """2-D convolution (cross-correlation), as keras.layers.Conv2D.

    Args: filters, kernel_size, strides=(1, 1), padding='valid' | 'same', dilation_rate=(1, 1),
        activation=None, use_bias=True, kernel_initializer='glorot_uniform',
        bias_initializer='zeros'. Keras forbids strides > 1 together with dilation_rate > 1.
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
        self.dilation_rate = normalize_tuple(dilation_rate, 2, "dilation_rate", where)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{where}: `strides > 1` not supported in conjunction with "
                             f"`dilation_rate > 1`. Received: strides={self.strides} and "
                             f"dilation_rate={self.dilation_rate}")
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
        # a dilated kernel has the window geometry of an undilated one of its effective size
        eff = effective_kernel_size(self.kernel_size, self.dilation_rate)
        try:
            g = backend.conv2d_geometry((1,) + tuple(input_shape[1:]),
                                        eff + (input_shape[-1], self.filters),
                                        self.strides, self.padding)
        except ValueError as e:
            raise ValueError(f"Conv2D '{self.name}': input {shape_str(input_shape)} does not fit "
                             f"kernel_size={self.kernel_size}, strides={self.strides}, "
                             f"padding='{self.padding}'{_dil_str(self.dilation_rate)}: "
                             f"{e}") from None
        return (input_shape[0],) + tuple(g["out_shape"][1:])

    def forward(self, x, training):
        self._x = x
        out_shape = (x.shape[0],) + self.compute_output_shape(x.shape)[1:]
        z = self._buffer("z", out_shape)
        if self.dilation_rate != (1, 1):
            backend.conv2d_dilated_forward(z, x, self.kernel, self.bias, self.strides,
                                           self.padding, self.dilation_rate)
            return self._activity(self._act_forward(z))
        g = backend.conv2d_geometry(x.shape, self.kernel.shape, self.strides, self.padding)
        backend.conv2d_forward(z, x, self.kernel, self.bias, self.strides, self.padding,
                               backend.workspace.get(g["workspace"]))
        return self._activity(self._act_forward(z))

    def backward(self, dout, need_dinp=True, dout_is_dlogits=False):
        dout = self._activity_backward(dout, dout_is_dlogits)
        dz = self._act_backward(dout, dout_is_dlogits)
        x = self._x
        dx = self._buffer("dx", x.shape) if need_dinp else None
        if self.dilation_rate != (1, 1):
            backend.conv2d_dilated_backward(dx, self.grads[0],
                                            self.grads[1] if self.use_bias else None, dz, x,
                                            self.kernel, self.strides, self.padding,
                                            self.dilation_rate)
            return dx
        g = backend.conv2d_geometry(x.shape, self.kernel.shape, self.strides, self.padding)
        backend.conv2d_backward(dx, self.grads[0], self.grads[1] if self.use_bias else None, dz,
                                x, self.kernel, self.strides, self.padding,
                                backend.workspace.get(g["workspace"]))
        return dx

    def get_config(self):
        c = super().get_config()
        c.update(filters=self.filters, kernel_size=self.kernel_size,
                 strides=self.strides, padding=self.padding, data_format="channels_last",
                 dilation_rate=self.dilation_rate, activation=self.activation,
                 use_bias=self.use_bias,
                 kernel_initializer=serialize_initializer(self.kernel_initializer),
                 bias_initializer=serialize_initializer(self.bias_initializer))
        return c


class _DepthwiseBase(FusedActivation, Layer):
    """The depthwise stage shared by DepthwiseConv2D and SeparableConv2D: argument checks,
    geometry and the depthwise kernel calls (csrc/depthwise_cpu.cpp)."""

    _kind = ""

    def _init_depthwise(self, kernel_size, strides, padding, depth_multiplier, data_format,
                        dilation_rate):
        where = f"{self._kind} '{self.name}'"
        self.depth_multiplier = _positive_int(depth_multiplier, "depth_multiplier", where)
        self.kernel_size = normalize_tuple(kernel_size, 2, "kernel_size", where)
        self.strides = normalize_tuple(strides, 2, "strides", where)
        self.padding = normalize_padding(padding, where)
        check_data_format(data_format, where)
        self.dilation_rate = normalize_tuple(dilation_rate, 2, "dilation_rate", where)
        return where

    def _check_input_shape(self, input_shape):
        _check_rank4(self, self._kind, input_shape)

    def _depthwise_shape(self, input_shape):
        """(batch, OH, OW, C * depth_multiplier) of the depthwise stage."""
        self._check_input_shape(tuple(input_shape))
        try:
            g = backend.depthwise_conv2d_geometry(
                (1,) + tuple(input_shape[1:]),
                self.kernel_size + (input_shape[-1], self.depth_multiplier), self.strides,
                self.padding, self.dilation_rate)
        except ValueError as e:
            raise ValueError(f"{self._kind} '{self.name}': input {shape_str(input_shape)} does "
                             f"not fit kernel_size={self.kernel_size}, strides={self.strides}, "
                             f"padding='{self.padding}'{_dil_str(self.dilation_rate)}: "
                             f"{e}") from None
        return (input_shape[0],) + tuple(g["out_shape"][1:])

    def _dw_forward(self, out, x, kernel, bias):
        backend.depthwise_conv2d_forward(out, x, kernel, bias, self.strides, self.padding,
                                         self.dilation_rate)

    def _dw_backward(self, dx, dkernel, dbias, dout, x, kernel):
        backend.depthwise_conv2d_backward(dx, dkernel, dbias, dout, x, kernel, self.strides,
                                          self.padding, self.dilation_rate)

    def _depthwise_config(self):
        c = Layer.get_config(self)
        c.update(depth_multiplier=self.depth_multiplier, kernel_size=self.kernel_size,
                 strides=self.strides, padding=self.padding, data_format="channels_last",
                 dilation_rate=self.dilation_rate, activation=self.activation,
                 use_bias=self.use_bias)
        return c

    @classmethod
    def from_config(cls, config):
        from ._util import deserialize_initializer
        if isinstance(config, dict):
            config = dict(config)
            for key in ("depthwise_initializer", "pointwise_initializer"):
                if key in config:
                    config[key] = deserialize_initializer(
                        config[key], f"{cls.__name__}.from_config: {key}")
        return super().from_config(config)


class DepthwiseConv2D(_DepthwiseBase):
    """Depthwise 2-D convolution, as keras.layers.DepthwiseConv2D: each input channel is
    convolved with its own depth_multiplier filters.

    Args: kernel_size, strides=(1, 1), padding='valid' | 'same', depth_multiplier=1,
        dilation_rate=(1, 1), activation=None, use_bias=True,
        depthwise_initializer='glorot_uniform', bias_initializer='zeros'.
    Weights (Keras order and shapes): kernel (kh, kw, channels, depth_multiplier),
        bias (channels * depth_multiplier,); output channel c * depth_multiplier + m is input
        channel c through filter m.
    Output shape: (batch, new_height, new_width, channels * depth_multiplier).
    """

    _kind = "DepthwiseConv2D"

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        where = self._init_depthwise(kernel_size, strides, padding, depth_multiplier,
                                     data_format, dilation_rate)
        reject_unsupported(where, depthwise_regularizer=(depthwise_regularizer, None),
                           bias_regularizer=(bias_regularizer, None),
                           activity_regularizer=(activity_regularizer, None),
                           depthwise_constraint=(depthwise_constraint, None),
                           bias_constraint=(bias_constraint, None))
        self._init_activation(activation)
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def build(self, input_shape):
        kh, kw = self.kernel_size
        c = input_shape[-1]
        self.kernel = self._add_weight((kh, kw, c, self.depth_multiplier),
                                       self.depthwise_initializer)
        self.bias = self._add_weight((c * self.depth_multiplier,), self.bias_initializer) \
            if self.use_bias else None

    def compute_output_shape(self, input_shape):
        return self._depthwise_shape(input_shape)

    def forward(self, x, training):
        self._x = x
        z = self._buffer("z", (x.shape[0],) + self.compute_output_shape(x.shape)[1:])
        self._dw_forward(z, x, self.kernel, self.bias)
        return self._act_forward(z)

    def backward(self, dout, need_dinp=True, dout_is_dlogits=False):
        dz = self._act_backward(dout, dout_is_dlogits)
        x = self._x
        dx = self._buffer("dx", x.shape) if need_dinp else None
        self._dw_backward(dx, self.grads[0], self.grads[1] if self.use_bias else None, dz, x,
                          self.kernel)
        return dx

    def get_config(self):
        c = self._depthwise_config()
        c.update(depthwise_initializer=serialize_initializer(self.depthwise_initializer),
                 bias_initializer=serialize_initializer(self.bias_initializer))
        return c


class SeparableConv2D(_DepthwiseBase):
    """Depthwise separable 2-D convolution, as keras.layers.SeparableConv2D: a depthwise
    convolution (strides, padding and dilation apply here) followed by a 1x1 pointwise
    convolution to `filters` channels, then the bias and the activation.

    Args: filters, kernel_size, strides=(1, 1), padding='valid' | 'same',
        dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True,
        depthwise_initializer='glorot_uniform', pointwise_initializer='glorot_uniform',
        bias_initializer='zeros'.
    Weights (Keras order and shapes): depthwise_kernel (kh, kw, channels, depth_multiplier),
        pointwise_kernel (1, 1, channels * depth_multiplier, filters), bias (filters,).
    The pointwise stage is Conv2D's 1x1 path (a GEMM over the pixels).
    """

    _kind = "SeparableConv2D"

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, pointwise_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = _positive_int(filters, "filters", f"SeparableConv2D '{self.name}'")
        where = self._init_depthwise(kernel_size, strides, padding, depth_multiplier,
                                     data_format, dilation_rate)
        reject_unsupported(where, depthwise_regularizer=(depthwise_regularizer, None),
                           pointwise_regularizer=(pointwise_regularizer, None),
                           bias_regularizer=(bias_regularizer, None),
                           activity_regularizer=(activity_regularizer, None),
                           depthwise_constraint=(depthwise_constraint, None),
                           pointwise_constraint=(pointwise_constraint, None),
                           bias_constraint=(bias_constraint, None))
        self._init_activation(activation)
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def build(self, input_shape):
        kh, kw = self.kernel_size
        c, dm = input_shape[-1], self.depth_multiplier
        self.depthwise_kernel = self._add_weight((kh, kw, c, dm), self.depthwise_initializer)
        self.pointwise_kernel = self._add_weight((1, 1, c * dm, self.filters),
                                                 self.pointwise_initializer)
        self.bias = self._add_weight((self.filters,), self.bias_initializer) \
            if self.use_bias else None

    def compute_output_shape(self, input_shape):
        return self._depthwise_shape(input_shape)[:3] + (self.filters,)

    def _pointwise_workspace(self, mid_shape):
        g = backend.conv2d_geometry(mid_shape, self.pointwise_kernel.shape, (1, 1), "valid")
        return backend.workspace.get(g["workspace"])

    def forward(self, x, training):
        self._x = x
        mid = self._buffer("mid", (x.shape[0],) + self._depthwise_shape(x.shape)[1:])
        self._dw_forward(mid, x, self.depthwise_kernel, None)
        self._mid = mid
        z = self._buffer("z", mid.shape[:3] + (self.filters,))
        backend.conv2d_forward(z, mid, self.pointwise_kernel, self.bias, (1, 1), "valid",
                               self._pointwise_workspace(mid.shape))
        return self._act_forward(z)

    def backward(self, dout, need_dinp=True, dout_is_dlogits=False):
        dz = self._act_backward(dout, dout_is_dlogits)
        x, mid = self._x, self._mid
        dmid = self._buffer("dmid", mid.shape)
        backend.conv2d_backward(dmid, self.grads[1], self.grads[2] if self.use_bias else None,
                                dz, mid, self.pointwise_kernel, (1, 1), "valid",
                                self._pointwise_workspace(mid.shape))
        dx = self._buffer("dx", x.shape) if need_dinp else None
        self._dw_backward(dx, self.grads[0], None, dmid, x, self.depthwise_kernel)
        return dx

    def get_config(self):
        c = self._depthwise_config()
        c.update(filters=self.filters,
                 depthwise_initializer=serialize_initializer(self.depthwise_initializer),
                 pointwise_initializer=serialize_initializer(self.pointwise_initializer),
                 bias_initializer=serialize_initializer(self.bias_initializer))
        return c
