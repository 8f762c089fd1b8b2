"""Activation layers with arguments: ReLU, LeakyReLU, ELU, PReLU, Softmax (keras.layers).

Formulas as Keras 3's TF backend computes them: docs/keras_semantics.md#activation-layers.
ReLU, LeakyReLU, ELU and Softmax are Activation layers: where their arguments make them one of
the activation kinds (ReLU() is 'relu', ReLU(max_value=6) 'relu6', LeakyReLU(0.2) and
ReLU(negative_slope=0.2) 'leaky_relu', ELU() 'elu', Softmax over the last axis 'softmax') they
run exactly as Activation(kind) does, fused in the native step and with the cached-logits rule
for softmax. Otherwise `activation` is None and they run their own kernels
(csrc/activations_layers.h), on the LayerEngine and in the Net (its relu / elu ops; PReLU is
its prelu op; a Softmax over another axis makes the Net decline the model).
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import backend, initializers
from ._util import deserialize_initializer, reject_unsupported, serialize_initializer
from .base import Layer, shape_str
from .core import Activation


def _number(value, layer, arg, allow_none=False):
    """A float from a Keras numeric argument; TypeError for anything else."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{layer}: {arg} must be a number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{layer}: {arg} must be finite, got {value}")
    return value


class _ArgActivation(Activation):
    """An Activation layer that is an activation kind for some arguments and runs its own
    kernel for the others (then `activation` is None)."""

    def _init_kind(self, kind):
        if kind is not None:
            self._init_activation(kind)
        else:
            self.activation, self._act_kind, self.logits, self._y = None, None, None, None

    def forward(self, x, training):
        if self.activation is not None:
            return self._act_forward(x)
        self._x = x
        y = self._buffer("out", x.shape)
        self._kernel_forward(y, x)
        return y

    def backward(self, dout, need_dinp=True, dout_is_dlogits=False):
        if self.activation is not None:
            return self._act_backward(dout, dout_is_dlogits)
        dx = self._buffer("dx", dout.shape)
        self._kernel_backward(dx, np.ascontiguousarray(dout, dtype=np.float32))
        return dx

    def get_config(self):
        c = super().get_config()
        del c["activation"]
        return c


class ReLU(_ArgActivation):
    """Keras's ReLU: x >= max_value -> max_value; threshold <= x < max_value -> x; otherwise
    negative_slope * (x - threshold).

    Input shape: any. Output shape: the input's.
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        where = "ReLU"
        max_value = _number(max_value, where, "max_value", allow_none=True)
        if max_value is not None and max_value < 0.0:
            raise ValueError("max_value of a ReLU layer cannot be a negative value. Received: "
                             f"max_value={max_value}")
        if negative_slope is None or _number(negative_slope, where, "negative_slope") < 0.0:
            raise ValueError("negative_slope of a ReLU layer cannot be None or a negative "
                             f"value. Received: negative_slope={negative_slope}")
        if threshold is None or _number(threshold, where, "threshold") < 0.0:
            raise ValueError("threshold of a ReLU layer cannot be None or a negative value. "
                             f"Received: threshold={threshold}")
        super().__init__("relu", **kwargs)
        self.max_value = max_value
        self.negative_slope = float(negative_slope)
        self.threshold = float(threshold)
        self._spec = backend.relu_spec(self.negative_slope, self.threshold, self.max_value)
        self._init_kind(self._kind())

    def _kind(self):
        """The activation kind these arguments compute exactly (Keras's own branches), or None."""
        s = self._spec
        if self.threshold == 0.0 and self.negative_slope == 0.0:
            if self.max_value is None:
                return "relu"
            if s.relu6:
                return "relu6"
        if s.leaky and np.float32(self.negative_slope) == np.float32(0.2):
            return "leaky_relu"
        return None

    def _kernel_forward(self, y, x):
        backend.relu_forward(y, x, self._spec)

    def _kernel_backward(self, dx, dout):
        backend.relu_backward(dx, dout, self._x, self._spec)

    def get_config(self):
        c = super().get_config()
        c.update(max_value=self.max_value, negative_slope=self.negative_slope,
                 threshold=self.threshold)
        return c


class LeakyReLU(_ArgActivation):
    """x >= 0 -> x, else negative_slope * x (tf.nn.leaky_relu). `alpha=` is Keras 2's name of
    negative_slope, accepted with a warning as Keras 3 does.

    Input shape: any. Output shape: the input's.
    """

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
            warnings.warn("Argument `alpha` is deprecated. Use `negative_slope` instead.",
                          stacklevel=2)
        if negative_slope is None or _number(negative_slope, "LeakyReLU",
                                             "negative_slope") < 0.0:
            raise ValueError("The negative_slope value of a Leaky ReLU layer cannot be None or "
                             f"negative value. Expected a float. Received: "
                             f"negative_slope={negative_slope}")
        super().__init__("relu", **kwargs)
        self.negative_slope = float(negative_slope)
        self._spec = backend.leaky_relu_spec(self.negative_slope)
        same = np.float32(self.negative_slope) == np.float32(0.2)
        self._init_kind("leaky_relu" if same else None)

    def _kernel_forward(self, y, x):
        backend.relu_forward(y, x, self._spec)

    def _kernel_backward(self, dx, dout):
        backend.relu_backward(dx, dout, self._x, self._spec)

    def get_config(self):
        c = super().get_config()
        c.update(negative_slope=self.negative_slope)
        return c


class ELU(_ArgActivation):
    """x > 0 -> x, else alpha * (exp(x) - 1).

    Input shape: any. Output shape: the input's.
    """

    def __init__(self, alpha=1.0, **kwargs):
        alpha = _number(alpha, "ELU", "alpha")
        super().__init__("elu", **kwargs)
        self.alpha = alpha
        self._init_kind("elu" if alpha == 1.0 else None)

    def _kernel_forward(self, y, x):
        backend.elu_forward(y, x, self.alpha)

    def _kernel_backward(self, dx, dout):
        backend.elu_backward(dx, dout, self._x, self.alpha)

    def get_config(self):
        c = super().get_config()
        c.update(alpha=self.alpha)
        return c


class Softmax(_ArgActivation):
    """exp(x - max(x)) / sum(exp(x - max(x))) along `axis` (an int, or a list of one int).

    Input shape: any. Output shape: the input's. The call's `mask` is not supported.
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__("softmax", **kwargs)
        self.axis = axis
        ax = axis
        if isinstance(ax, (list, tuple)):
            if len(ax) != 1:
                raise NotImplementedError(
                    f"Softmax '{self.name}': argument axis={axis!r} (several axes) is not "
                    "supported by cnnfast; give one axis")
            ax = ax[0]
        if isinstance(ax, bool) or not isinstance(ax, (int, np.integer)):
            raise TypeError(f"Softmax '{self.name}': axis must be an int, got {axis!r}")
        self._axis = int(ax)
        self._init_kind("softmax" if self._axis == -1 else None)

    def __call__(self, inputs, training=None, mask=None, **kwargs):
        if mask is not None:
            raise NotImplementedError(f"Softmax '{self.name}': argument mask is not supported "
                                      "by cnnfast")
        return super().__call__(inputs, training=training, **kwargs)

    def _check_input_shape(self, input_shape):
        n = len(input_shape)
        if not -n <= self._axis < n:
            raise ValueError(f"Softmax '{self.name}': axis {self.axis!r} is out of range for "
                             f"an input of shape {shape_str(input_shape)}")

    def build(self, input_shape):
        if self._axis % len(input_shape) == len(input_shape) - 1:
            self._init_kind("softmax")  # the last axis, however it is spelled

    def _kernel_forward(self, y, x):
        backend.softmax_axis_forward(y, x, self._axis)
        self._y = y

    def _kernel_backward(self, dx, dout):
        backend.softmax_axis_backward(dx, dout, self._y, self._axis)

    def get_config(self):
        c = super().get_config()
        c.update(axis=list(self.axis) if isinstance(self.axis, (list, tuple)) else self.axis)
        return c


class PReLU(Layer):
    """x >= 0 -> x, else alpha * x, with a learned alpha of the input's shape without the batch
    axis, of size 1 along `shared_axes`.

    Input shape: (batch, ...), every non-batch size known. Output shape: the input's.
    Weights: alpha.
    """

    def __init__(self, alpha_initializer="zeros", alpha_regularizer=None, alpha_constraint=None,
                 shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        where = f"PReLU '{self.name}'"
        reject_unsupported(where, alpha_regularizer=(alpha_regularizer, None),
                           alpha_constraint=(alpha_constraint, None))
        self.alpha_initializer = initializers.get(alpha_initializer)
        if shared_axes is None:
            self.shared_axes = None
        else:
            axes = list(shared_axes) if isinstance(shared_axes, (list, tuple)) \
                else [shared_axes]
            for a in axes:
                if isinstance(a, bool) or not isinstance(a, (int, np.integer)) or a < 1:
                    raise ValueError(f"{where}: shared_axes must be axes >= 1 of the input "
                                     f"(axis 0 is the batch), got {shared_axes!r}")
            self.shared_axes = [int(a) for a in axes]

    def _check_input_shape(self, input_shape):
        if len(input_shape) < 2 or any(d is None for d in input_shape[1:]):
            raise ValueError(f"PReLU '{self.name}': the input must have rank >= 2 and known "
                             f"non-batch sizes, got {shape_str(input_shape)}")
        for a in self.shared_axes or ():
            if a >= len(input_shape):
                raise ValueError(f"PReLU '{self.name}': shared axis {a} is out of range for an "
                                 f"input of shape {shape_str(input_shape)}")

    def build(self, input_shape):
        shape = list(input_shape[1:])
        for a in self.shared_axes or ():
            shape[a - 1] = 1
        self.alpha = self._add_weight(tuple(shape), self.alpha_initializer)
        # Each element of a sample -> its alpha element (alpha broadcast over the shared axes).
        self._alpha_index = np.ascontiguousarray(np.broadcast_to(
            np.arange(self.alpha.size, dtype=np.int32).reshape(shape),
            tuple(input_shape[1:])).reshape(-1))

    def forward(self, x, training):
        self._x = x
        y = self._buffer("out", x.shape)
        backend.prelu_forward(y, x, self.alpha, self._alpha_index)
        return y

    def backward(self, dout, need_dinp=True, dout_is_dlogits=False):
        dout = np.ascontiguousarray(dout, dtype=np.float32)
        dx = self._buffer("dx", dout.shape) if need_dinp else None
        partial = self._buffer("partial", (dout.shape[0], self.alpha.size))
        backend.prelu_backward(dx, self.grads[0], partial, dout, self._x, self.alpha,
                               self._alpha_index)
        return dx

    def get_config(self):
        c = super().get_config()
        c.update(alpha_initializer=serialize_initializer(self.alpha_initializer),
                 alpha_regularizer=None, alpha_constraint=None, shared_axes=self.shared_axes)
        return c

    @classmethod
    def from_config(cls, config):
        if isinstance(config, dict) and "alpha_initializer" in config:
            config = dict(config, alpha_initializer=deserialize_initializer(
                config["alpha_initializer"], "PReLU.from_config: alpha_initializer"))
        return super().from_config(config)
