"""Optimizers with Keras's update rules (fused native kernels; see csrc/optim.h).

`learning_rate` is a float (rounded to float32 when applied, like Keras's float32 variable:
`applied_learning_rate`) that callbacks such as ReduceLROnPlateau set between steps, or a
`schedules.LearningRateSchedule` evaluated at `iterations` before each update (then it cannot
be set, as in Keras). `iterations` counts applied updates, starting at 0; the engine that runs
the step (cnnfast/executor.py) owns it. Every optimizer takes Keras's `weight_decay`,
`clipnorm`, `clipvalue` and `global_clipnorm` and applies them in Keras's order: clip the
gradients, decay the weights, update (docs/keras_semantics.md#clipping-and-weight-decay)."""
from __future__ import annotations

import numbers

import numpy as np

from . import backend, schedules
from ._names import resolve_name

_UNSUPPORTED_DEFAULTS = {
    "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
    "loss_scale_factor": None, "gradient_accumulation_steps": None,
}

_SCHEDULE_NOT_SETTABLE = (
    "This optimizer was created with a `LearningRateSchedule` object as its `learning_rate` "
    "constructor argument, hence its learning rate is not settable. If you need the learning "
    "rate to be settable, you should instantiate the optimizer with a float `learning_rate` "
    "argument.")


def applied_learning_rate(opt):
    """The learning rate the next update uses, rounded to float32 as Keras's float32 variable
    or schedule value is: the float, the schedule at `opt.iterations`, or a zero-argument
    callable's value (docs/keras_semantics.md#learning-rate-schedules). Both engines and the
    callbacks read it here."""
    sched = opt._schedule
    if sched is None:
        value = opt._lr
    elif isinstance(sched, schedules.LearningRateSchedule):
        value = sched(opt.iterations)
    else:
        value = sched()
    return float(np.float32(value))


def _optional_float(cls, what, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
            not np.isfinite(value):
        raise ValueError(f"{cls}: {what} must be None or a finite float, got {value!r}")
    return float(value)


class Optimizer:
    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None, **kwargs):
        cls = type(self).__name__
        for k, v in kwargs.items():
            if k not in _UNSUPPORTED_DEFAULTS:
                raise TypeError(f"{cls}: unrecognized keyword argument {k!r}")
            if v != _UNSUPPORTED_DEFAULTS[k]:
                raise NotImplementedError(f"{cls}: argument {k}={v!r} is not supported by "
                                          "cnnfast")
        clips = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        if sum(v is not None for v in clips.values()) > 1:
            raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be "
                             f"set. Received: clipnorm={clipnorm}, clipvalue={clipvalue}, "
                             f"global_clipnorm={global_clipnorm}")
        for k, v in clips.items():
            setattr(self, k, _optional_float(cls, k, v))
        self.weight_decay = _optional_float(cls, "weight_decay", weight_decay)
        self._schedule = None
        self.learning_rate = learning_rate
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        self._slots = None

    @property
    def learning_rate(self):
        """The float given, or with a schedule its float32 value at `iterations` (what Keras's
        `optimizer.learning_rate` returns then)."""
        if self._schedule is not None:
            return applied_learning_rate(self)
        return self._lr

    @learning_rate.setter
    def learning_rate(self, value):
        cls = type(self).__name__
        if isinstance(value, schedules.LearningRateSchedule) or \
                (callable(value) and not isinstance(value, numbers.Real)):
            self._schedule = value
            return
        if isinstance(self._schedule, schedules.LearningRateSchedule):
            raise TypeError(_SCHEDULE_NOT_SETTABLE)
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"{cls}: learning_rate must be a float or a LearningRateSchedule, "
                            f"got {value!r}") from None
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{cls}: learning_rate must be a finite number >= 0, got {value}")
        self._schedule = None
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

    @property
    def state_array(self):
        """An optimizer-wide float32 state array the native step reads (Nadam's u_product), or
        None."""
        return None

    def prepare_step(self, step):
        """Called by the engine before update `step` (iterations + 1), once per step, whichever
        engine runs it: optimizer-wide state (Nadam's u_product) advances here."""

    def clip_spec(self):
        """(backend.ClipKind, value) of the gradient clipping. As in Keras, a clip argument
        that is 0 or negative clips nothing."""
        k = backend.ClipKind
        for value, kind in ((self.clipnorm, k.norm), (self.global_clipnorm, k.global_norm),
                            (self.clipvalue, k.value)):
            if value is not None and value > 0:
                return kind, value
        return k.none, 0.0

    def apply(self, weights, grads, lr, step):
        """One update of every weight from its gradient, with learning rate `lr` (as applied,
        float32) at step `step` (iterations + 1), in Keras's order: clip the gradients (in
        place), decay the weights, update each. The caller advances `iterations`."""
        self._ensure_built(weights)
        kind, clip = self.clip_spec()
        if kind != backend.ClipKind.none:
            backend.clip_gradients(list(grads), kind, clip)
        if self.weight_decay is not None:
            for w in weights:
                backend.weight_decay_update(w, lr, self.weight_decay)
        for w, g, s in zip(weights, grads, self._slots):
            self._update(w, g, s, lr, step)

    def variables_count(self):
        """Number of optimizer scalars, as Keras's summary 'Optimizer params': the iteration
        count, the learning-rate variable (none with a schedule), the slots and any
        optimizer-wide state."""
        if self._slots is None:
            return 0
        n = 1 + (self._schedule is None)
        n += 0 if self.state_array is None else int(self.state_array.size)
        return n + sum(int(a.size) for s in self._slots for a in s if a is not None)

    def get_config(self):
        if self._schedule is None:
            lr = self._lr
        elif isinstance(self._schedule, schedules.LearningRateSchedule):
            lr = schedules.serialize(self._schedule)
        else:
            raise ValueError(f"{type(self).__name__}: a callable learning_rate cannot be "
                             "serialized; use a LearningRateSchedule")
        return {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm,
                "clipvalue": self.clipvalue, "use_ema": False, "ema_momentum": 0.99,
                "ema_overwrite_frequency": None, "loss_scale_factor": None,
                "gradient_accumulation_steps": None}

    @classmethod
    def from_config(cls, config):
        """A new optimizer from get_config() output; a schedule's dict is rebuilt (built-in
        schedules only)."""
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)


class Adam(Optimizer):
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, name="adam", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.amsgrad = bool(amsgrad)
        for k in ("beta_1", "beta_2"):
            if not 0.0 <= getattr(self, k) < 1.0:
                raise ValueError(f"{type(self).__name__}: {k} must be in [0, 1), got "
                                 f"{getattr(self, k)}")

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


def _check_unit(cls, **values):
    """Each value must be a float in [0, 1)."""
    for k, v in values.items():
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0.0 <= v < 1.0:
            raise ValueError(f"{cls}: {k} must be a float in [0, 1), got {v!r}")


def _check_positive(cls, **values):
    for k, v in values.items():
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not v >= 0.0 or \
                not np.isfinite(v):
            raise ValueError(f"{cls}: {k} must be a finite float >= 0, got {v!r}")


class AdamW(Adam):
    """Adam with decoupled weight decay (Keras 3: Adam whose `weight_decay` must be set)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, name="adam_w", **kwargs):
        if weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: "
                             "weight_decay=None")
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, name=name, weight_decay=weight_decay, **kwargs)


class Nadam(Optimizer):
    """Adam with Nesterov momentum (Keras's Nadam, with its momentum schedule u_t)."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 name="nadam", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        _check_unit("Nadam", beta_1=beta_1, beta_2=beta_2)
        _check_positive("Nadam", epsilon=epsilon)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        # Keras's _u_product variable: the product of u_1..u_t after step t (1 before any).
        self._u_product = np.ones(1, np.float32)
        self._u_step = 0

    @property
    def state_array(self):
        return self._u_product

    def prepare_step(self, step):
        # u_product is a function of the step count: recomputed from 1 when iterations moved
        # other than by one update (a loaded model, iterations set by hand).
        if self._u_step != step - 1:
            u = np.float32(1.0)
            for k in range(1, step):
                u = backend.nadam_u_product_next(u, self.beta_1, k)
            self._u_product[0] = u
        self._u_product[0] = backend.nadam_u_product_next(float(self._u_product[0]),
                                                          self.beta_1, step)
        self._u_step = step

    def _make_slots(self, w):
        return (np.zeros_like(w), np.zeros_like(w))

    def _update(self, w, g, s, lr, step):
        backend.nadam_update(w, s[0], s[1], g, lr, self.beta_1, self.beta_2, self.epsilon, step,
                             float(self._u_product[0]))

    def get_config(self):
        c = super().get_config()
        c.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon)
        return c


class Adamax(Optimizer):
    """Adam with the infinity norm in place of the second moment (Keras's Adamax)."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 name="adamax", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        _check_unit("Adamax", beta_1=beta_1, beta_2=beta_2)
        _check_positive("Adamax", epsilon=epsilon)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _make_slots(self, w):
        return (np.zeros_like(w), np.zeros_like(w))

    def _update(self, w, g, s, lr, step):
        backend.adamax_update(w, s[0], s[1], g, lr, self.beta_1, self.beta_2, self.epsilon, step)

    def get_config(self):
        c = super().get_config()
        c.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon)
        return c


class Adagrad(Optimizer):
    """Per-parameter rates from the sum of squared gradients (Keras's Adagrad)."""

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 name="adagrad", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        _check_positive("Adagrad", initial_accumulator_value=initial_accumulator_value,
                        epsilon=epsilon)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = float(epsilon)

    def _make_slots(self, w):
        return (np.full_like(w, np.float32(self.initial_accumulator_value)),)

    def _update(self, w, g, s, lr, step):
        backend.adagrad_update(w, s[0], g, lr, self.epsilon)

    def get_config(self):
        c = super().get_config()
        c.update(initial_accumulator_value=self.initial_accumulator_value, epsilon=self.epsilon)
        return c


class Adadelta(Optimizer):
    """Keras's Adadelta (its learning_rate scales the Adadelta step; default 0.001)."""

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, name="adadelta", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        _check_unit("Adadelta", rho=rho)
        _check_positive("Adadelta", epsilon=epsilon)
        self.rho, self.epsilon = float(rho), float(epsilon)

    def _make_slots(self, w):
        return (np.zeros_like(w), np.zeros_like(w))

    def _update(self, w, g, s, lr, step):
        backend.adadelta_update(w, s[0], s[1], g, lr, self.rho, self.epsilon)

    def get_config(self):
        c = super().get_config()
        c.update(rho=self.rho, epsilon=self.epsilon)
        return c


_BY_NAME = {"adam": Adam, "sgd": SGD, "rmsprop": RMSprop, "adamw": AdamW, "nadam": Nadam,
            "adamax": Adamax, "adagrad": Adagrad, "adadelta": Adadelta}
_KERAS_OTHERS = {"ftrl", "lion", "adafactor", "lamb", "loss_scale_optimizer", "muon"}


def get(identifier):
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        return _BY_NAME[resolve_name("optimizer", identifier, _BY_NAME, _KERAS_OTHERS)]()
    raise TypeError(f"optimizer must be a string or an Optimizer, got {identifier!r}")
