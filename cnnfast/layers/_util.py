"""Argument normalisation shared by the layers (Keras's conv_utils equivalents)."""
from __future__ import annotations

import numpy as np

from .. import activations, backend, initializers


def normalize_tuple(value, n, arg, layer, allow_zero=False):
    """int or length-n sequence of positive ints -> tuple; ValueError naming layer and arg."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value),) * n
    try:
        value = tuple(value)
    except TypeError:
        raise TypeError(f"{layer}: {arg} must be an int or a tuple of {n} ints, "
                        f"got {value!r}") from None
    if len(value) != n or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                  for v in value):
        raise ValueError(f"{layer}: {arg} must be an int or a tuple of {n} ints, got {value!r}")
    lo = 0 if allow_zero else 1
    if any(v < lo for v in value):
        raise ValueError(f"{layer}: {arg} must be positive, got {value!r}")
    return tuple(int(v) for v in value)


def normalize_padding(value, layer):
    if not isinstance(value, str) or value.lower() not in ("valid", "same"):
        if isinstance(value, str) and value.lower() == "causal":
            raise NotImplementedError(f"{layer}: padding='causal' is not supported")
        raise ValueError(f"{layer}: padding must be 'valid' or 'same', got {value!r}")
    return value.lower()


def check_data_format(value, layer):
    if value not in (None, "channels_last"):
        if value == "channels_first":
            raise NotImplementedError(f"{layer}: data_format='channels_first' is not supported; "
                                      "cnnfast computes in NHWC (channels_last)")
        raise ValueError(f"{layer}: data_format must be 'channels_last' or 'channels_first', "
                         f"got {value!r}")


def reject_unsupported(layer, **args):
    """NotImplementedError for every Keras argument given a non-default value we don't run."""
    for name, (value, default) in args.items():
        if value is not default and value != default:
            raise NotImplementedError(f"{layer}: argument {name}={value!r} is not supported by "
                                      "cnnfast")


class FusedActivation:
    """Mixin: an optional activation applied after the layer's affine op, fused in the layer.

    `self.logits` is the pre-activation output of the last forward; when the loss consumes it
    directly (softmax + cross-entropy, TF's cached-logits rule), backward gets d(logits)."""

    def _init_activation(self, activation):
        self.activation = activations.get(activation)
        self._act_kind = backend.ACTIVATIONS[self.activation]
        self.logits = None
        self._y = None

    def _act_forward(self, z):
        self.logits = z
        if self.activation == "linear":
            self._y = z
            return z
        y = self._buffer("act_out", z.shape)
        backend.activation_forward(y, z, self._act_kind)
        self._y = y
        return y

    def _act_backward(self, dout, dout_is_dlogits):
        if self.activation == "linear" or dout_is_dlogits:
            return np.ascontiguousarray(dout, dtype=np.float32)
        dz = self._buffer("act_grad", dout.shape)
        backend.activation_backward(dz, np.ascontiguousarray(dout, dtype=np.float32), self._y,
                                    self._act_kind, self.logits)
        return dz


# ---- config (de)serialisation of initializers, for get_config / from_config ----------------
_INIT_NAMES = {initializers.GlorotUniform: "glorot_uniform", initializers.GlorotNormal:
               "glorot_normal", initializers.HeNormal: "he_normal",
               initializers.HeUniform: "he_uniform", initializers.Zeros: "zeros",
               initializers.Ones: "ones"}
_INIT_CLASSES = {cls.__name__: cls for cls in _INIT_NAMES}


def serialize_initializer(init):
    """'glorot_uniform' for an unseeded built-in, {'class_name', 'config': {'seed'}} for a
    seeded one; any other object gives {'class_name': its type} (which from_config rejects)."""
    cls = type(init)
    if cls in _INIT_NAMES:
        seed = getattr(init, "seed", None)
        if seed is None:
            return _INIT_NAMES[cls]
        return {"class_name": cls.__name__, "config": {"seed": seed}}
    return {"class_name": getattr(cls, "__name__", "object"), "config": {}}


def deserialize_initializer(value, where):
    """Inverse of serialize_initializer; only the built-in initializer classes are made."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) <= {"class_name", "config", "module",
                                                  "registered_name"}:
        cls = _INIT_CLASSES.get(value.get("class_name"))
        cfg = value.get("config") or {}
        if cls is not None and isinstance(cfg, dict) and set(cfg) <= {"seed"}:
            seed = cfg.get("seed")
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
                raise ValueError(f"{where}: initializer seed must be an int, got {seed!r}")
            return cls(seed) if issubclass(cls, initializers.GlorotUniform) else cls()
    raise ValueError(f"{where}: unsupported initializer config {value!r}; supported: "
                     f"{sorted(_INIT_CLASSES)}")
