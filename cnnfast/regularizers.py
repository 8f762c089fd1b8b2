"""Weight and activity regularizers, as keras.regularizers (Keras: src/regularizers).

`L1(l1=0.01)`, `L2(l2=0.01)` and `L1L2(l1=0.0, l2=0.0)` (also spelled `l1`, `l2`, `l1_l2`),
by string id as Keras 3 resolves them ('l1', 'l2', 'l1l2' and the class names), each a penalty
`l1 * sum(|x|) + l2 * sum(x**2)` that the training step adds to the loss it minimises and to
the loss it reports (docs/keras_semantics.md#regularizers). A layer takes them as
`kernel_regularizer`, `bias_regularizer` and `activity_regularizer` (cnnfast/layers/base.py).

cnnfast differentiates these penalties in C++ (csrc/optim.h weight_penalty); it has no automatic
differentiation of a Python function, so another callable (a custom regularizer function or
class, OrthogonalRegularizer) raises NotImplementedError where a layer is given it.
"""
from __future__ import annotations

import math

import numpy as np

from . import backend


def _factor(value, name):
    """Keras's validate_float_arg: a finite non-negative float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or math.isinf(value) or math.isnan(value) or value < 0:
        raise ValueError(f"Invalid value for argument {name}: expected a non-negative float. "
                         f"Received: {name}={value}")
    return float(value)


class Regularizer:
    """Base class: a callable x -> scalar penalty, with get_config / from_config."""

    def __call__(self, x):
        return np.float32(0.0)

    def factors(self):
        """(l1, l2) of a penalty cnnfast computes in C++, None for any other (which layers
        reject with NotImplementedError)."""
        return None

    def get_config(self):
        raise NotImplementedError(f"{self} does not implement get_config()")

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class L1L2(Regularizer):
    """l1 * sum(|x|) + l2 * sum(x**2); defaults l1 = l2 = 0 (as Keras's L1L2)."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor(0.0 if l1 is None else l1, "l1")
        self.l2 = _factor(0.0 if l2 is None else l2, "l2")

    def factors(self):
        return (self.l1, self.l2)

    def __call__(self, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        l1, l2 = self.factors()
        return np.float32(backend.weight_penalty(None, x, l1, l2, 1.0))

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class L1(L1L2):
    """l1 * sum(|x|); default l1 = 0.01."""

    def __init__(self, l1=0.01):
        # Keras keeps l1 as a float32 tensor: its config holds float(float32(l1)).
        super().__init__(l1=float(np.float32(_factor(0.01 if l1 is None else l1, "l1"))))

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    """l2 * sum(x**2); default l2 = 0.01."""

    def __init__(self, l2=0.01):
        super().__init__(l2=0.01 if l2 is None else l2)

    def get_config(self):
        return {"l2": self.l2}


l1 = L1
l2 = L2
l1_l2 = L1L2

# Keras 3's string ids: the class names and their to_snake_case ('l1l2', not 'l1_l2').
_BY_NAME = {"Regularizer": Regularizer, "regularizer": Regularizer, "L1": L1, "l1": L1,
            "L2": L2, "l2": L2, "L1L2": L1L2, "l1l2": L1L2}


def serialize(regularizer):
    """Keras's {'module', 'class_name', 'config', 'registered_name'} of a built-in one."""
    if regularizer is None:
        return None
    cls = type(regularizer)
    if _BY_NAME.get(cls.__name__) is not cls:
        raise ValueError(f"cannot serialize regularizer {regularizer!r}: only the built-in "
                         f"{sorted(k for k in _BY_NAME if k[0].isupper())} can be saved")
    return {"module": "keras.regularizers", "class_name": cls.__name__,
            "config": regularizer.get_config(), "registered_name": None}


def deserialize(config, custom_objects=None):
    if custom_objects:
        raise NotImplementedError("regularizers.deserialize: custom_objects is not supported")
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ValueError(f"Could not interpret regularizer identifier: {config}")
    cls = _BY_NAME.get(config["class_name"])
    cfg = config.get("config") or {}
    if cls is None or not isinstance(cfg, dict):
        raise ValueError(f"Could not interpret regularizer identifier: {config}")
    return cls.from_config(cfg)


def get(identifier):
    """None, a Regularizer (or callable), its class, a string id or a serialized dict ->
    a regularizer (None for None), as keras.regularizers.get."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        obj = deserialize(identifier)
    elif isinstance(identifier, str):
        obj = _BY_NAME.get(identifier)
    else:
        obj = identifier
    if isinstance(obj, type):
        obj = obj()
    if not callable(obj):
        raise ValueError(f"Could not interpret regularizer identifier: {identifier}")
    return obj


def for_layer(identifier, where, arg):
    """A layer argument's regularizer: get(identifier), which cnnfast must be able to
    differentiate (an L1/L2/L1L2 penalty), else NotImplementedError naming the argument."""
    reg = get(identifier)
    if reg is not None and (not isinstance(reg, Regularizer) or reg.factors() is None):
        raise NotImplementedError(
            f"{where}: {arg}={identifier!r} is not supported by cnnfast: it runs the L1, L2 "
            "and L1L2 regularizers only (it has no automatic differentiation of a Python "
            "function)")
    return reg
