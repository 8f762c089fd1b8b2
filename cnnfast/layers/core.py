"""Dense, Flatten, Dropout, SpatialDropout2D, Activation (ReLU, Softmax and the other
activation layers with arguments: activation.py)."""
from __future__ import annotations

import math

import numpy as np

from .. import backend, initializers, utils
from . import base
from ._util import FusedActivation, check_data_format, reject_unsupported, serialize_initializer
from .base import Layer, shape_str


class Dense(FusedActivation, Layer):
    """Fully connected layer: y = activation(x @ kernel + bias), kernel (in, units).

    Input shape: (batch, ..., in). Output shape: (batch, ..., units).
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 lora_rank=None, **kwargs):
        super().__init__(**kwargs)
        where = f"Dense '{self.name}'"
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"{where}: units must be a positive int, got {units!r}")
        self._set_regularizers(activity_regularizer, kernel=kernel_regularizer,
                               bias=bias_regularizer)
        reject_unsupported(where, kernel_constraint=(kernel_constraint, None),
                           bias_constraint=(bias_constraint, None), lora_rank=(lora_rank, None))
        self.units = int(units)
        self._init_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def _check_input_shape(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"Input of layer '{self.name}' (Dense) must have rank >= 2 with a "
                             f"known last axis, found shape {shape_str(input_shape)}")

    def build(self, input_shape):
        self.kernel = self._add_weight((input_shape[-1], self.units), self.kernel_initializer)
        self.bias = self._add_weight((self.units,), self.bias_initializer) \
            if self.use_bias else None

    def compute_output_shape(self, input_shape):
        self._check_input_shape(tuple(input_shape))
        return tuple(input_shape[:-1]) + (self.units,)

    def forward(self, x, training):
        self._x_shape = x.shape
        x2 = x.reshape(-1, x.shape[-1])
        self._x2 = x2
        z = self._buffer("z", (x2.shape[0], self.units))
        backend.dense_forward(z, x2, self.kernel, self.bias)
        return self._activity(self._act_forward(z).reshape(x.shape[:-1] + (self.units,)))

    def backward(self, dout, need_dinp=True, dout_is_dlogits=False):
        dout = self._activity_backward(dout, dout_is_dlogits)
        dz = self._act_backward(dout.reshape(-1, self.units), dout_is_dlogits)
        dx = self._buffer("dx", self._x2.shape) if need_dinp else None
        backend.dense_backward(dx, self.grads[0], self.grads[1] if self.use_bias else None, dz,
                               self._x2, self.kernel)
        return dx.reshape(self._x_shape) if need_dinp else None

    def get_config(self):
        c = super().get_config()
        c.update(units=self.units, activation=self.activation, use_bias=self.use_bias,
                 kernel_initializer=serialize_initializer(self.kernel_initializer),
                 bias_initializer=serialize_initializer(self.bias_initializer))
        return c


class Flatten(Layer):
    """Row-major reshape to (batch, -1); NHWC order, so the feature index is h*W*C + w*C + c."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        check_data_format(data_format, f"Flatten '{self.name}'")

    def _check_input_shape(self, input_shape):
        if any(d is None for d in input_shape[1:]):
            raise ValueError(f"Flatten '{self.name}': all non-batch sizes must be known, got "
                             f"{shape_str(input_shape)}")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], int(math.prod(input_shape[1:])))

    def forward(self, x, training):
        self._x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout, need_dinp=True, dout_is_dlogits=False):
        return dout.reshape(self._x_shape)

    def get_config(self):
        c = super().get_config()
        c.update(data_format="channels_last")
        return c


class Dropout(Layer):
    """Inverted dropout: in training keep each unit with probability 1 - rate and scale it by
    1 / (1 - rate); identity in evaluate/predict.

    The mask's stream: the layer's own generator when it has a `seed`, else the `seed` the
    engine passes to forward (derived from the step's seed), else one draw from cnnfast's
    global generator (an eager call outside any engine)."""

    stochastic = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        try:
            rate = float(rate)
        except (TypeError, ValueError):
            raise TypeError(f"Dropout '{self.name}': rate must be a float, got {rate!r}") from None
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"Dropout '{self.name}': rate must be in [0, 1], got {rate}")
        if noise_shape is not None:
            raise NotImplementedError(f"Dropout '{self.name}': noise_shape is not supported")
        self.rate = rate
        self.seed = seed
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def _stream(self, seed):
        """The mask's seed: the layer's own generator, else the engine's, else a global draw."""
        if self._rng is not None:
            return int(self._rng.integers(0, 2**63))
        if seed is None:
            return int(utils.rng().integers(0, 2**63))
        return seed

    def _mask_shape(self, shape):
        return shape

    def _mask_forward(self, y, x, seed):
        if base.sample_offset:  # a shard of a global batch (cnnfast.distributed)
            per_row = x.size // x.shape[0] if x.shape[0] else 0
            backend.dropout_forward_at(y, self._mask, x, self.rate, seed,
                                       base.sample_offset * per_row)
        else:
            backend.dropout_forward(y, self._mask, x, self.rate, seed)

    def _mask_backward(self, dx, dout):
        backend.dropout_backward(dx, dout, self._mask, self.rate)

    def forward(self, x, training, seed=None):
        self._active = training and self.rate > 0.0
        if not self._active:
            return x
        y = self._buffer("y", x.shape)
        if self.rate >= 1.0:
            y.fill(0.0)
            return y
        self._mask = self._buffer("mask", self._mask_shape(x.shape), np.uint8)
        self._mask_forward(y, x, self._stream(seed))
        return y

    def backward(self, dout, need_dinp=True, dout_is_dlogits=False):
        if not self._active:
            return dout
        dx = self._buffer("dx", dout.shape)
        if self.rate >= 1.0:
            dx.fill(0.0)
            return dx
        self._mask_backward(dx, np.ascontiguousarray(dout, dtype=np.float32))
        return dx

    def get_config(self):
        c = super().get_config()
        c.update(rate=self.rate, seed=self.seed, noise_shape=None)
        return c


class SpatialDropout2D(Dropout):
    """Dropout of whole feature maps: in training each (sample, channel) is kept with
    probability 1 - rate and scaled by 1 / (1 - rate) (noise shape (batch, 1, 1, channels));
    identity in evaluate/predict. Seeds as Dropout's; both engines draw the same masks (the
    native step's spatial_dropout2d op).

    Input shape: (batch, rows, cols, channels). Output shape: the input's.
    """

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        if "noise_shape" in kwargs:
            raise TypeError("SpatialDropout2D: unrecognized keyword argument 'noise_shape'")
        super().__init__(rate, seed=seed, **kwargs)
        check_data_format(data_format, f"SpatialDropout2D '{self.name}'")

    def _check_input_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"Input of layer '{self.name}' (SpatialDropout2D) must be 4-D "
                             f"(batch, rows, cols, channels), found shape "
                             f"{shape_str(input_shape)}")

    def _mask_shape(self, shape):
        return (shape[0], shape[3])

    def _mask_forward(self, y, x, seed):
        # a shard of a global batch (cnnfast.distributed): the global batch's (sample, channel)
        backend.spatial_dropout_forward(y, self._mask, x, self.rate, seed,
                                        base.sample_offset * x.shape[-1])

    def _mask_backward(self, dx, dout):
        backend.spatial_dropout_backward(dx, dout, self._mask, self.rate)

    def get_config(self):
        # Keras's keys (its SpatialDropout2D takes no `trainable` nor `noise_shape`)
        c = super().get_config()
        del c["noise_shape"], c["trainable"]
        c.update(data_format="channels_last")
        return c


class Activation(FusedActivation, Layer):
    """Applies an activation: Activation('relu'), Activation('softmax'), ..."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self._init_activation(activation)

    def forward(self, x, training):
        return self._act_forward(x)

    def backward(self, dout, need_dinp=True, dout_is_dlogits=False):
        return self._act_backward(dout, dout_is_dlogits)

    def get_config(self):
        c = super().get_config()
        c.update(activation=self.activation)
        return c
