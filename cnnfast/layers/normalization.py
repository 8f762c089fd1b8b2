"""BatchNormalization over the last axis (docs/keras_semantics.md#batchnormalization)."""
from __future__ import annotations

import numbers

import numpy as np

from .. import backend, initializers
from ._util import reject_unsupported, serialize_initializer
from .base import Layer, shape_str


class BatchNormalization(Layer):
    """Normalises each channel (the last axis) with the batch's statistics when training and
    with the moving statistics otherwise, as keras.layers.BatchNormalization.

    Args: axis=-1 (only the last axis), momentum=0.99, epsilon=1e-3, center=True (beta),
        scale=True (gamma), beta_initializer='zeros', gamma_initializer='ones',
        moving_mean_initializer='zeros', moving_variance_initializer='ones'.
    Input shape: (batch, ..., channels): an NHWC Conv2D output or a (batch, units) Dense one.
    Output shape: the input's.
    Weights: gamma, beta (trainable; absent with scale/center=False), moving_mean,
        moving_variance (non-trainable, updated by every training forward).
    `trainable=False` also makes the layer normalise with the moving statistics in training.
    """

    _n_state_weights = 2  # moving_mean, moving_variance

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, renorm=False, renorm_clipping=None,
                 renorm_momentum=0.99, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        where = f"BatchNormalization '{self.name}'"
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise NotImplementedError(f"{where}: axis={axis!r} is not supported; cnnfast "
                                      "normalises over the last axis only (axis=-1)")
        self.axis = int(axis)
        for arg, value in (("momentum", momentum), ("epsilon", epsilon)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"{where}: {arg} must be a float, got {value!r}")
        self.momentum, self.epsilon = float(momentum), float(epsilon)
        if not self.epsilon > 0.0:
            raise ValueError(f"{where}: epsilon must be > 0, got {epsilon!r}")
        reject_unsupported(where, beta_regularizer=(beta_regularizer, None),
                           gamma_regularizer=(gamma_regularizer, None),
                           beta_constraint=(beta_constraint, None),
                           gamma_constraint=(gamma_constraint, None), renorm=(renorm, False),
                           renorm_clipping=(renorm_clipping, None),
                           renorm_momentum=(renorm_momentum, 0.99),
                           synchronized=(synchronized, False))
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None
        self._batch_stats = False

    def _check_input_shape(self, input_shape):
        rank = len(input_shape)
        if rank < 2 or input_shape[-1] is None:
            raise ValueError(f"Input of layer '{self.name}' (BatchNormalization) must have rank "
                             f">= 2 with a known last axis, found shape {shape_str(input_shape)}")
        if self.axis not in (-1, rank - 1):
            if -rank <= self.axis < rank:
                raise NotImplementedError(
                    f"BatchNormalization '{self.name}': axis={self.axis} is not supported; "
                    f"cnnfast normalises over the last axis only (axis=-1 or {rank - 1} for "
                    f"input shape {shape_str(input_shape)})")
            raise ValueError(f"BatchNormalization '{self.name}': axis {self.axis} is out of "
                             f"bounds for input shape {shape_str(input_shape)}")

    def build(self, input_shape):
        C = (input_shape[-1],)
        if self.scale:
            self.gamma = self._add_weight(C, self.gamma_initializer)
        if self.center:
            self.beta = self._add_weight(C, self.beta_initializer)
        self.moving_mean = self._add_weight(C, self.moving_mean_initializer)
        self.moving_variance = self._add_weight(C, self.moving_variance_initializer)
        self._mean = np.zeros(C, np.float32)   # the statistics of the last forward
        self._rstd = np.ones(C, np.float32)

    def compute_output_shape(self, input_shape):
        self._check_input_shape(tuple(input_shape))
        return tuple(input_shape)

    def forward(self, x, training):
        # Keras: batch statistics only when training AND trainable (a frozen layer infers).
        self._batch_stats = bool(training) and self.trainable
        self._x = np.ascontiguousarray(x, dtype=np.float32)
        y = self._buffer("y", x.shape)
        backend.batchnorm_forward(y, self._mean, self._rstd, self.moving_mean,
                                  self.moving_variance, self._x, self.gamma, self.beta,
                                  self.epsilon, self.momentum, self._batch_stats)
        return y

    def backward(self, dout, need_dinp=True, dout_is_dlogits=False):
        dx = self._buffer("dx", self._x.shape) if need_dinp else None
        dgamma = self.grads[0] if self.scale else None
        dbeta = self.grads[int(self.scale)] if self.center else None
        backend.batchnorm_backward(dx, dgamma, dbeta, np.ascontiguousarray(dout, np.float32),
                                   self._x, self._mean, self._rstd, self.gamma,
                                   self._batch_stats)
        return dx

    def get_config(self):
        c = super().get_config()
        c.update(axis=self.axis, momentum=self.momentum, epsilon=self.epsilon,
                 center=self.center, scale=self.scale,
                 beta_initializer=serialize_initializer(self.beta_initializer),
                 gamma_initializer=serialize_initializer(self.gamma_initializer),
                 moving_mean_initializer=serialize_initializer(self.moving_mean_initializer),
                 moving_variance_initializer=serialize_initializer(
                     self.moving_variance_initializer),
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, synchronized=False)
        return c
