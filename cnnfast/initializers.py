"""Weight initializers (Keras definitions). Only their distributions match Keras: the random
streams cannot, so parity tests copy weights instead."""
from __future__ import annotations

import math

import numpy as np

from . import utils


def _fans(shape):
    if len(shape) == 2:
        return shape[0], shape[1]
    if len(shape) >= 3:  # conv kernel (kh, kw, in, out): receptive field times channels
        rf = math.prod(shape[:-2])
        return shape[-2] * rf, shape[-1] * rf
    n = shape[0] if shape else 1
    return n, n


class Initializer:
    def __call__(self, shape, dtype="float32"):
        raise NotImplementedError

    def get_config(self):
        return {}


class Zeros(Initializer):
    def __call__(self, shape, dtype="float32"):
        return np.zeros(shape, dtype=np.float32)


class Ones(Initializer):
    def __call__(self, shape, dtype="float32"):
        return np.ones(shape, dtype=np.float32)


class GlorotUniform(Initializer):
    """U(-L, L) with L = sqrt(6 / (fan_in + fan_out))."""

    def __init__(self, seed=None):
        self.seed = seed

    def _gen(self):
        return np.random.default_rng(self.seed) if self.seed is not None else utils.rng()

    def __call__(self, shape, dtype="float32"):
        fan_in, fan_out = _fans(tuple(shape))
        limit = math.sqrt(6.0 / max(1.0, (fan_in + fan_out)))
        return self._gen().uniform(-limit, limit, size=shape).astype(np.float32)


class GlorotNormal(GlorotUniform):
    """Truncated normal (2 std) with stddev sqrt(2 / (fan_in + fan_out)) / 0.8796..."""

    def __call__(self, shape, dtype="float32"):
        fan_in, fan_out = _fans(tuple(shape))
        return _truncated_normal(self._gen(), shape, math.sqrt(2.0 / max(1.0, fan_in + fan_out)))


class HeNormal(GlorotUniform):
    def __call__(self, shape, dtype="float32"):
        fan_in, _ = _fans(tuple(shape))
        return _truncated_normal(self._gen(), shape, math.sqrt(2.0 / max(1.0, fan_in)))


class HeUniform(GlorotUniform):
    def __call__(self, shape, dtype="float32"):
        fan_in, _ = _fans(tuple(shape))
        limit = math.sqrt(6.0 / max(1.0, fan_in))
        return self._gen().uniform(-limit, limit, size=shape).astype(np.float32)


def _truncated_normal(gen, shape, scale):
    # Keras: stddev = sqrt(scale / fan) / .87962566103423978 (std of N(0,1) truncated at 2).
    std = scale / 0.87962566103423978
    out = gen.standard_normal(size=shape)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = gen.standard_normal(size=int(bad.sum()))
        bad = np.abs(out) > 2
    return (out * std).astype(np.float32)


_ALIASES = {
    "glorot_uniform": GlorotUniform, "glorotuniform": GlorotUniform,
    "glorot_normal": GlorotNormal, "he_normal": HeNormal, "he_uniform": HeUniform,
    "zeros": Zeros, "zero": Zeros, "ones": Ones, "one": Ones,
}


def get(identifier):
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier.lower())
        if cls is None:
            raise NotImplementedError(
                f"initializer {identifier!r} is not implemented; supported: {sorted(_ALIASES)}")
        return cls()
    if callable(identifier):
        return identifier
    raise TypeError(f"initializer must be a string or Initializer, got {identifier!r}")
