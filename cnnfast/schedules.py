"""Learning-rate schedules (`keras.optimizers.schedules`), passed as an optimizer's
`learning_rate=`.

The optimizer evaluates its schedule at `optimizer.iterations` (0 before the first update)
before every update, and the update uses the value rounded to float32
(`optimizers.applied_learning_rate`, docs/keras_semantics.md#learning-rate-schedules).

Keras's TF backend computes each schedule on 0-d float32 tensors: every +, -, *, / is one
float32 rounding, and TF's CPU kernels evaluate pow, cos and log of a 0-d tensor with the C
library's powf, cosf and logf. The schedules here do the same, with NumPy float32 scalars and
those C functions (`backend.f32_pow`, `f32_cos`, `f32_log`), in Keras's operation order
(keras/src/optimizers/schedules/learning_rate_schedule.py), so they give Keras's values bit for
bit (`tests/test_schedules.py`).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from . import backend

f32 = np.float32
_PI = f32(math.pi)


def _pow(x, y):
    return f32(backend.f32_pow(f32(x), f32(y)))


def _cos(x):
    return f32(backend.f32_cos(f32(x)))


def _log(x):
    return f32(backend.f32_log(f32(x)))


def _positive_steps(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"Argument `{what}` must be a number. Received: {what}={value!r}")
    if value <= 0:
        raise ValueError(f"Argument `{what}` must be > 0. Received: {what}={value}")


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"Argument `{what}` must be a number. Received: {what}={value!r}")


class LearningRateSchedule:
    """Base class of the schedules: subclass it and override `__call__(self, step)` (the
    learning rate at iteration `step`, an int) and `get_config()`.

    A subclass's `__call__` may return a Python float or a NumPy scalar; the optimizer rounds
    it to float32. Only the schedules of this module can be saved and loaded."""

    def __call__(self, step):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must "
                                  "override `__call__(self, step)`.")

    def get_config(self):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must "
                                  "override `get_config()` in order to be serializable.")

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class ExponentialDecay(LearningRateSchedule):
    """`initial_learning_rate * decay_rate ** (step / decay_steps)` (the exponent floored when
    `staircase`)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        _number(initial_learning_rate, "initial_learning_rate")
        _positive_steps(decay_steps, "decay_steps")
        _number(decay_rate, "decay_rate")
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def __call__(self, step):
        p = f32(step) / f32(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return f32(self.initial_learning_rate) * _pow(self.decay_rate, p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """`values[0]` while `step <= boundaries[0]`, `values[i]` while
    `boundaries[i-1] < step <= boundaries[i]`, `values[-1]` after the last boundary."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        boundaries, values = list(boundaries), list(values)
        if len(boundaries) != len(values) - 1:
            raise ValueError("The length of boundaries should be 1 less than the length of "
                             f"values. Received: boundaries={boundaries} of length "
                             f"{len(boundaries)}, and values={values} of length {len(values)}.")
        for b in boundaries:
            _number(b, "boundaries")
        for v in values:
            _number(v, "values")
        self.boundaries = boundaries
        self.values = values
        self.name = name

    def __call__(self, step):
        # Keras casts the boundaries to the step's integer dtype (truncating floats) and sums
        # indicator * value over the ranges, in this order, in float32.
        step = int(step)
        b = [int(x) for x in self.boundaries]
        v = [f32(x) for x in self.values]
        result = f32(0.0)
        result += f32(step <= b[0]) * v[0]
        result += f32(step > b[-1]) * v[-1]
        for low, high, value in zip(b[:-1], b[1:], v[1:-1]):
            result += f32(low < step <= high) * value
        return result

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """`(initial - end) * (1 - step / decay_steps) ** power + end`, the step held at
    `decay_steps` (or, with `cycle`, decay_steps stretched to the next multiple above step)."""

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0,
                 cycle=False, name="PolynomialDecay"):
        _number(initial_learning_rate, "initial_learning_rate")
        _positive_steps(decay_steps, "decay_steps")
        _number(end_learning_rate, "end_learning_rate")
        _number(power, "power")
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name

    def __call__(self, step):
        initial = f32(self.initial_learning_rate)
        end = f32(self.end_learning_rate)
        gs = f32(step)
        ds = f32(self.decay_steps)
        if self.cycle:
            multiplier = f32(1.0) if gs == 0 else np.ceil(gs / f32(self.decay_steps))
            ds = ds * multiplier
        else:
            gs = min(gs, ds)
        p = gs / ds
        return (initial - end) * _pow(f32(1) - p, self.power) + end

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power, "cycle": self.cycle, "name": self.name}


class InverseTimeDecay(LearningRateSchedule):
    """`initial_learning_rate / (1 + decay_rate * step / decay_steps)` (the ratio floored when
    `staircase`)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="InverseTimeDecay"):
        _number(initial_learning_rate, "initial_learning_rate")
        _positive_steps(decay_steps, "decay_steps")
        _number(decay_rate, "decay_rate")
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def __call__(self, step):
        p = f32(step) / f32(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return f32(self.initial_learning_rate) / (f32(1) + f32(self.decay_rate) * p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay from `initial_learning_rate` (or, after a linear warmup of `warmup_steps`
    to `warmup_target`, from `warmup_target`) to `alpha` times that over `decay_steps`."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        _number(initial_learning_rate, "initial_learning_rate")
        _positive_steps(decay_steps, "decay_steps")
        _number(alpha, "alpha")
        if warmup_target is not None:
            _number(warmup_target, "warmup_target")
        _number(warmup_steps, "warmup_steps")
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name
        self.warmup_steps = warmup_steps
        self.warmup_target = warmup_target

    def _decay(self, step, decay_steps, decay_from_lr):
        fraction = step / decay_steps
        cosine = f32(0.5) * (f32(1.0) + _cos(_PI * fraction))
        return decay_from_lr * (f32(1 - self.alpha) * cosine + f32(self.alpha))

    def __call__(self, step):
        initial = f32(self.initial_learning_rate)
        ds = f32(self.decay_steps)
        gs = f32(step)
        if self.warmup_target is None:
            return self._decay(min(gs, ds), ds, initial)
        target = f32(self.warmup_target)
        ws = f32(self.warmup_steps)
        gs = min(gs, ds + ws)
        if gs < ws:
            return (target - initial) * (gs / ws) + initial
        return self._decay(gs - ws, ds, target)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR): periods of `first_decay_steps * t_mul**i`
    steps, the i-th starting from `initial_learning_rate * m_mul**i`."""

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0,
                 alpha=0.0, name="SGDRDecay"):
        _number(initial_learning_rate, "initial_learning_rate")
        _positive_steps(first_decay_steps, "first_decay_steps")
        for v, what in ((t_mul, "t_mul"), (m_mul, "m_mul"), (alpha, "alpha")):
            _number(v, what)
        self.initial_learning_rate = initial_learning_rate
        self.first_decay_steps = first_decay_steps
        self._t_mul = t_mul
        self._m_mul = m_mul
        self.alpha = alpha
        self.name = name

    def __call__(self, step):
        initial = f32(self.initial_learning_rate)
        alpha, t_mul, m_mul = f32(self.alpha), f32(self._t_mul), f32(self._m_mul)
        fraction = f32(step) / f32(self.first_decay_steps)
        if t_mul == f32(1.0):
            i_restart = np.floor(fraction)
            fraction = fraction - i_restart
        else:
            i_restart = np.floor(_log(f32(1.0) - fraction * (f32(1.0) - t_mul)) / _log(t_mul))
            sum_r = (f32(1.0) - _pow(t_mul, i_restart)) / (f32(1.0) - t_mul)
            fraction = (fraction - sum_r) / _pow(t_mul, i_restart)
        m_fac = _pow(m_mul, i_restart)
        cosine = f32(0.5) * m_fac * (f32(1.0) + _cos(_PI * fraction))
        return initial * ((f32(1) - alpha) * cosine + alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self._t_mul,
                "m_mul": self._m_mul, "alpha": self.alpha, "name": self.name}


# The schedules a saved optimizer config may name (nothing else is ever constructed from a file).
SCHEDULE_CLASSES = {cls.__name__: cls for cls in (
    ExponentialDecay, PiecewiseConstantDecay, PolynomialDecay, InverseTimeDecay, CosineDecay,
    CosineDecayRestarts)}


def serialize(schedule):
    """Keras's form of a schedule inside an optimizer config (serialize_keras_object)."""
    name = type(schedule).__name__
    if SCHEDULE_CLASSES.get(name) is not type(schedule):
        raise ValueError(f"cannot serialize learning-rate schedule {name}: only "
                         f"{sorted(SCHEDULE_CLASSES)} can be saved")
    return {"module": "keras.optimizers.schedules", "class_name": name,
            "config": schedule.get_config(), "registered_name": None}


def deserialize(config):
    """A schedule from `serialize`'s output; ValueError for anything else."""
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise ValueError(f"a learning-rate schedule config must be a dict with a 'config' dict, "
                         f"got {config!r}")
    cls = SCHEDULE_CLASSES.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"unknown learning-rate schedule {config.get('class_name')!r}; "
                         f"supported: {sorted(SCHEDULE_CLASSES)}")
    return cls.from_config(dict(config["config"]))
