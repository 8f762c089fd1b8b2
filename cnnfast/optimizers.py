"""Optimizers with Keras's update rules (fused native kernels; see csrc/optim.h).

`learning_rate` is a plain attribute (rounded to float32 when applied, like Keras's float32
variable: `applied_learning_rate`); callbacks such as ReduceLROnPlateau set it between steps.
`iterations` counts applied updates, starting at 0; the engine that runs the step
(cnnfast/executor.py) owns it."""
from __future__ import annotations

import numpy as np

from . import backend
from ._names import resolve_name

_UNSUPPORTED_DEFAULTS = {
    "weight_decay": None, "clipnorm": None, "clipvalue": None, "global_clipnorm": None,
    "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
    "loss_scale_factor": None, "gradient_accumulation_steps": None,
}


def applied_learning_rate(opt):
    """The learning rate an update uses: Keras keeps it in a float32 variable, so it is read
    back rounded to float32 (docs/keras_semantics.md#optimizers)."""
    return float(np.float32(opt.learning_rate))


class Optimizer:
    def __init__(self, learning_rate, name=None, **kwargs):
        for k, v in kwargs.items():
            if k not in _UNSUPPORTED_DEFAULTS:
                raise TypeError(f"{type(self).__name__}: unrecognized keyword argument {k!r}")
            if v != _UNSUPPORTED_DEFAULTS[k]:
                raise NotImplementedError(f"{type(self).__name__}: argument {k}={v!r} is not "
                                          "supported by cnnfast")
        if callable(learning_rate) and not isinstance(learning_rate, (int, float)):
            raise NotImplementedError(f"{type(self).__name__}: learning-rate schedules are not "
                                      "supported; use a float and LearningRateScheduler")
        self.learning_rate = learning_rate
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        self._slots = None

    @property
    def learning_rate(self):
        return self._lr

    @learning_rate.setter
    def learning_rate(self, value):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"{type(self).__name__}: learning_rate must be a float, got "
                            f"{value!r}") from None
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{type(self).__name__}: learning_rate must be a finite number "
                             f">= 0, got {value}")
        self._lr = value

    lr = learning_rate  # Keras 2 alias

    def build(self, weights):
        """Allocate slot arrays for the weights (once; zero-filled like Keras)."""
        self._slots = [self._make_slots(w) for w in weights]
        self._weights_ids = [id(w) for w in weights]

    def _make_slots(self, w):
        return ()

    def _ensure_built(self, weights):
        if self._slots is None or self._weights_ids != [id(w) for w in weights]:
            self.build(weights)

    @property
    def slot_arrays(self):
        """The slot arrays of each weight as built (a list of tuples; None before the first
        update). A new list whenever the slots are rebuilt, so its identity tells a holder of
        pointers into them (the native engine) to rewire."""
        return self._slots

    def slots(self, weights):
        """The slot arrays for `weights` (built, zero-filled, on first use or when the
        weights changed): one tuple per weight, None where the optimizer keeps no slot."""
        self._ensure_built(weights)
        return self._slots

    def apply(self, weights, grads, lr, step):
        """One update of every weight from its gradient, with learning rate `lr` (as applied,
        float32) at step `step` (iterations + 1). The caller advances `iterations`."""
        self._ensure_built(weights)
        for w, g, s in zip(weights, grads, self._slots):
            self._update(w, g, s, lr, step)

    def variables_count(self):
        """Number of optimizer scalars, as Keras's summary 'Optimizer params'."""
        if self._slots is None:
            return 0
        return 2 + sum(int(a.size) for s in self._slots for a in s if a is not None)

    def get_config(self):
        return {"name": self.name, "learning_rate": self._lr}


class Adam(Optimizer):
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, name="adam", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.amsgrad = bool(amsgrad)
        for k in ("beta_1", "beta_2"):
            if not 0.0 <= getattr(self, k) < 1.0:
                raise ValueError(f"Adam: {k} must be in [0, 1), got {getattr(self, k)}")

    def _make_slots(self, w):
        return (np.zeros_like(w), np.zeros_like(w), np.zeros_like(w) if self.amsgrad else None)

    def _update(self, w, g, s, lr, step):
        backend.adam_update(w, s[0], s[1], s[2], g, lr, self.beta_1, self.beta_2, self.epsilon,
                            step)

    def get_config(self):
        c = super().get_config()
        c.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                 amsgrad=self.amsgrad)
        return c


class SGD(Optimizer):
    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name="SGD", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        if isinstance(momentum, bool) or not isinstance(momentum, (float, int)) or \
                not 0.0 <= momentum <= 1.0:
            raise ValueError(f"SGD: momentum must be a float in [0, 1], got {momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _make_slots(self, w):
        return (np.zeros_like(w) if self.momentum != 0 else None,)

    def _update(self, w, g, s, lr, step):
        backend.sgd_update(w, s[0], g, lr, self.momentum, self.nesterov)

    def get_config(self):
        c = super().get_config()
        c.update(momentum=self.momentum, nesterov=self.nesterov)
        return c


class RMSprop(Optimizer):
    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 name="rmsprop", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)
        self.centered = bool(centered)

    def _make_slots(self, w):
        return (np.zeros_like(w), np.zeros_like(w) if self.momentum > 0 else None,
                np.zeros_like(w) if self.centered else None)

    def _update(self, w, g, s, lr, step):
        backend.rmsprop_update(w, s[0], s[1], s[2], g, lr, self.rho, self.momentum, self.epsilon,
                               self.centered)

    def get_config(self):
        c = super().get_config()
        c.update(rho=self.rho, momentum=self.momentum, epsilon=self.epsilon,
                 centered=self.centered)
        return c


_BY_NAME = {"adam": Adam, "sgd": SGD, "rmsprop": RMSprop}
_KERAS_OTHERS = {"adamw", "adagrad", "adadelta", "adamax", "nadam", "ftrl", "lion", "adafactor",
                 "lamb", "loss_scale_optimizer", "muon"}


def get(identifier):
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        return _BY_NAME[resolve_name("optimizer", identifier, _BY_NAME, _KERAS_OTHERS)]()
    raise TypeError(f"optimizer must be a string or an Optimizer, got {identifier!r}")
