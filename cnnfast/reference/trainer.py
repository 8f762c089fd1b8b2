"""A tiny Sequential-like trainer over the NumPy reference kernels (the "vs NumPy" baseline).

It runs the same computation as a cnnfast Sequential model — forward, sparse cross-entropy
from logits, backward, Adam — with every operation done by `cnnfast.reference` in float32
(``dtype=np.float32``). It exists to be timed by ``bench/`` and to cross-check one training
step of cnnfast; it is not an API users should train with.

    from cnnfast.reference import trainer as rt
    net = rt.Trainer([rt.Conv2D(32, 3, padding="same", activation="relu"), rt.MaxPooling2D(2),
                      rt.Flatten(), rt.Dense(128, activation="relu"), rt.Dropout(0.2),
                      rt.Dense(10, activation="softmax")], input_shape=(28, 28, 1), seed=0)
    loss = net.train_step(x_batch, y_batch)        # one Adam step, returns the batch-mean loss
    net.fit(x, y, batch_size=32, epochs=1)         # shuffled epochs; returns per-epoch losses
    probs_or_logits = net.predict(x, batch_size=128)

Conventions (those of cnnfast and Keras):
- activations NHWC, conv kernels (kh, kw, in, out), dense kernels (in, out), Flatten in
  (h, w, c) order; weights are initialised glorot-uniform / zero bias from ``seed``;
- the last layer's activation is not applied for the loss: a final ``softmax`` (or linear)
  layer's pre-activation is treated as the logits of a sparse cross-entropy (TF's cached-logits
  rule), so a step's gradient is ``(softmax(z) - onehot(y)) / B``;
- dropout is inverted dropout (kept units scaled by 1 / (1 - rate)); its keep masks come from
  the trainer's seeded generator, or from ``train_step(..., masks=[...])`` (one mask per
  Dropout layer, in order) so a step can be replayed with another engine's masks;
- Adam is ``reference.adam_update`` (Keras's float32 arithmetic, lr 1e-3, eps 1e-7).
"""
from __future__ import annotations

import math

import numpy as np

from .activations import activation_backward, activation_forward
from .conv import conv2d_backward, conv2d_forward, conv_output_size
from .dense import dense_backward, dense_forward
from .dropout import dropout_backward, dropout_forward
from .losses import softmax_xent_sparse
from .normalization import batchnorm_backward, batchnorm_forward
from .optimizers import adam_update
from .pool import maxpool2d_backward, maxpool2d_forward

__all__ = ["Conv2D", "Dense", "MaxPooling2D", "Flatten", "Dropout", "BatchNormalization",
           "Trainer"]

F32 = np.float32


def _glorot(rng, shape):
    if len(shape) == 2:
        fan_in, fan_out = shape
    else:
        rf = int(np.prod(shape[:-2]))
        fan_in, fan_out = shape[-2] * rf, shape[-1] * rf
    lim = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-lim, lim, size=shape).astype(F32)


class _Layer:
    params: list
    grads: list
    activation = "linear"

    def __init__(self):
        self.params, self.grads = [], []
        self.state = []   # non-trainable weights after params (BatchNormalization's moving stats)

    def build(self, in_shape, rng):
        """Create weights for a per-sample input shape; return the per-sample output shape."""
        return in_shape

    def forward(self, x, training, mask=None):
        return x

    def backward(self, dy, need_dx):
        return dy


class _Affine(_Layer):
    """Shared activation handling of Conv2D and Dense (activation fused after the affine op)."""

    def __init__(self, activation):
        super().__init__()
        self.activation = activation or "linear"

    def _act_forward(self, z, last):
        self._z = z
        if self.activation == "linear" or (last and self.activation == "softmax"):
            self._y = z
            return z
        self._y = activation_forward(z, self.activation, dtype=F32)
        return self._y

    def _act_backward(self, dy, dy_is_dlogits):
        if self.activation == "linear" or dy_is_dlogits:
            return dy
        return activation_backward(dy, self._y, self.activation, dtype=F32)


class Conv2D(_Affine):
    def __init__(self, filters, kernel_size=3, padding="valid", activation=None):
        super().__init__(activation)
        self.filters = int(filters)
        self.k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.padding = padding

    def build(self, in_shape, rng):
        h, w, c = in_shape
        self.params = [_glorot(rng, self.k + (c, self.filters)), np.zeros(self.filters, F32)]
        oh = conv_output_size(h, self.k[0], 1, self.padding)[0]
        ow = conv_output_size(w, self.k[1], 1, self.padding)[0]
        return (oh, ow, self.filters)

    def forward(self, x, training, mask=None, last=False):
        self._x = x
        z = conv2d_forward(x, self.params[0], self.params[1], (1, 1), self.padding, dtype=F32)
        return self._act_forward(z, last)

    def backward(self, dy, need_dx, dy_is_dlogits=False):
        dz = self._act_backward(dy, dy_is_dlogits)
        dx, dw, db = conv2d_backward(dz, self._x, self.params[0], (1, 1), self.padding,
                                     dtype=F32)
        self.grads = [dw, db]
        return dx if need_dx else None


class Dense(_Affine):
    def __init__(self, units, activation=None):
        super().__init__(activation)
        self.units = int(units)

    def build(self, in_shape, rng):
        if len(in_shape) != 1:
            raise ValueError(f"Dense needs a flat input, got per-sample shape {in_shape}")
        self.params = [_glorot(rng, (in_shape[0], self.units)), np.zeros(self.units, F32)]
        return (self.units,)

    def forward(self, x, training, mask=None, last=False):
        self._x = x
        return self._act_forward(dense_forward(x, self.params[0], self.params[1], dtype=F32),
                                 last)

    def backward(self, dy, need_dx, dy_is_dlogits=False):
        dz = self._act_backward(dy, dy_is_dlogits)
        dx, dw, db = dense_backward(dz, self._x, self.params[0], dtype=F32)
        self.grads = [dw, db]
        return dx if need_dx else None


class MaxPooling2D(_Layer):
    def __init__(self, pool_size=2):
        super().__init__()
        self.pool = (pool_size, pool_size) if isinstance(pool_size, int) else tuple(pool_size)

    def build(self, in_shape, rng):
        h, w, c = in_shape
        return (h // self.pool[0], w // self.pool[1], c)

    def forward(self, x, training, mask=None, last=False):
        self._x = x
        return maxpool2d_forward(x, self.pool, None, "valid", dtype=F32)

    def backward(self, dy, need_dx, dy_is_dlogits=False):
        return maxpool2d_backward(dy, self._x, self.pool, None, "valid", dtype=F32)


class Flatten(_Layer):
    def build(self, in_shape, rng):
        return (int(np.prod(in_shape)),)

    def forward(self, x, training, mask=None, last=False):
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, need_dx, dy_is_dlogits=False):
        return dy.reshape(self._shape)


class Dropout(_Layer):
    def __init__(self, rate):
        super().__init__()
        self.rate = float(rate)

    def forward(self, x, training, mask=None, last=False):
        self._active = training and self.rate > 0.0
        if not self._active:
            return x
        self._mask = mask if mask is not None else \
            (self._rng.random(x.shape, dtype=F32) >= F32(self.rate)).astype(np.uint8)
        return dropout_forward(x, self._mask, self.rate, dtype=F32)

    def backward(self, dy, need_dx, dy_is_dlogits=False):
        if not self._active:
            return dy
        return dropout_backward(dy, self._mask, self.rate, dtype=F32)


class BatchNormalization(_Layer):
    """Keras's BatchNormalization over the last axis, momentum 0.99, epsilon 1e-3."""

    def build(self, in_shape, rng):
        c = in_shape[-1]
        self.params = [np.ones(c, F32), np.zeros(c, F32)]
        self.state = [np.zeros(c, F32), np.ones(c, F32)]
        return in_shape

    def forward(self, x, training, mask=None, last=False):
        self._x, self._training = x, training
        y, self._mean, self._var, mm, mv = batchnorm_forward(
            x, self.params[0], self.params[1], *self.state, training=training, dtype=F32)
        if training:
            self.state = [mm.astype(F32), mv.astype(F32)]
        return y.astype(F32, copy=False)

    def backward(self, dy, need_dx, dy_is_dlogits=False):
        dx, dg, db = batchnorm_backward(dy, self._x, self.params[0], self._mean, self._var,
                                        training=self._training, dtype=F32)
        self.grads = [dg, db]
        return dx if need_dx else None


class Trainer:
    """layers + Adam + sparse cross-entropy from logits, all in float32 NumPy."""

    def __init__(self, layers, input_shape, learning_rate=1e-3, seed=0):
        self.layers = list(layers)
        self.input_shape = tuple(input_shape)
        self.lr = float(learning_rate)
        self.rng = np.random.default_rng(seed)
        shape = self.input_shape
        for layer in self.layers:
            layer._rng = self.rng
            shape = layer.build(shape, self.rng)
        self.output_shape = shape
        self.step = 0
        self._slots = [(np.zeros_like(p), np.zeros_like(p)) for p in self.params]
        first = [i for i, layer in enumerate(self.layers) if layer.params]
        self._first_trainable = first[0] if first else 0

    @property
    def params(self):
        return [p for layer in self.layers for p in layer.params]

    def count_params(self):
        return int(sum(p.size for p in self.params))

    def get_weights(self):
        return [p.copy() for layer in self.layers for p in layer.params + layer.state]

    def set_weights(self, weights):
        weights = list(weights)
        for layer in self.layers:
            for arrays in (layer.params, layer.state):
                for i in range(len(arrays)):
                    w = np.asarray(weights.pop(0), dtype=F32)
                    if w.shape != arrays[i].shape:
                        raise ValueError(f"weight shape {w.shape} != {arrays[i].shape}")
                    arrays[i] = w.copy()
        if weights:
            raise ValueError(f"{len(weights)} weight arrays left over")

    def _prep(self, x):
        x = np.asarray(x, dtype=F32)
        if x.ndim == len(self.input_shape) and self.input_shape[-1] == 1:
            x = x[..., None]
        return x

    def forward(self, x, training, masks=None):
        masks = list(masks) if masks is not None else None
        n = len(self.layers)
        for i, layer in enumerate(self.layers):
            m = masks.pop(0) if masks and isinstance(layer, Dropout) else None
            x = layer.forward(x, training, mask=m, last=i == n - 1)
        return x

    def train_step(self, x, y, masks=None):
        """One Adam step on the batch (x, y); returns the batch-mean loss before the update."""
        x = self._prep(x)
        logits = self.forward(x, True, masks)
        b = logits.shape[0]
        loss, d = softmax_xent_sparse(logits, np.asarray(y), dtype=F32)
        g = (d * (F32(1.0) / F32(b))).astype(F32)
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            g = layer.backward(g, need_dx=i > self._first_trainable,
                               dy_is_dlogits=i == len(self.layers) - 1)
            if g is None:
                break
        self.step += 1
        k = 0
        for layer in self.layers:
            for j in range(len(layer.params)):
                m, v = self._slots[k]
                w, m, v, _ = adam_update(layer.params[j], m, v, layer.grads[j], self.lr,
                                         step=self.step)
                layer.params[j] = w
                self._slots[k] = (m, v)
                k += 1
        return F32(loss.sum(dtype=F32) / F32(b))

    def fit(self, x, y, batch_size=32, epochs=1, shuffle=True):
        """Shuffled mini-batch epochs; returns the list of per-epoch mean losses."""
        x, y = self._prep(x), np.asarray(y)
        n = x.shape[0]
        out = []
        for _ in range(epochs):
            idx = self.rng.permutation(n) if shuffle else np.arange(n)
            tot = 0.0
            for s in range(0, n, batch_size):
                sel = idx[s:s + batch_size]
                tot += float(self.train_step(x[sel], y[sel])) * sel.size
            out.append(tot / n)
        return out

    def predict(self, x, batch_size=32):
        """Outputs of the last layer (its activation applied), dropout off."""
        x = self._prep(x)
        outs = []
        last = self.layers[-1]
        for s in range(0, x.shape[0], batch_size):
            z = self.forward(x[s:s + batch_size], False)
            if getattr(last, "activation", "linear") == "softmax":
                z = activation_forward(z, "softmax", dtype=F32)
            outs.append(z)
        return np.concatenate(outs).astype(F32, copy=False)
