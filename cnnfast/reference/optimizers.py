"""Reference optimizer steps in Keras's float32 arithmetic and exact operation order.

Each function returns NEW float32 arrays (inputs are never modified). All state arrays have
the shape of w. Hyper-parameters are Python floats: as in Keras, each is rounded to float32
where it meets a float32 tensor, and expressions like ``1 - beta_1`` are evaluated in double
*before* that rounding (f32(1 - 0.9) = 0.1f, while 1.0f - 0.9f = 0.100000024f). `lr` is the
float32 learning-rate variable's value. Every operation below is one float32 rounding, in
the order written (no fused multiply-add), matching keras/src/optimizers/{adam,sgd,rmsprop}.py:

Adam (step = iterations + 1):
    alpha = lr * sqrt(1 - powf(f32(beta2), t)) / (1 - powf(f32(beta1), t)),  t = f32(step)
    m = m + (g - m) * f32(1 - beta1)
    v = v + (g*g - v) * f32(1 - beta2)
    amsgrad (vhat given): vhat = max(vhat, v), used instead of v below
    w = w - (m * alpha) / (sqrt(v) + f32(eps))
SGD:
    momentum == 0: w = w - g * lr
    else: vel = vel * f32(mu) - g * lr;  w = w + vel  (nesterov: w = w + (vel * f32(mu) - g * lr))
RMSprop:
    v = f32(rho) * v + f32(1 - rho) * (g*g)
    centered: avg = f32(rho) * avg + f32(1 - rho) * g;  denom = (v - avg*avg) + f32(eps)
    else:     denom = v + f32(eps)
    incr = (lr * g) / sqrt(denom)
    momentum > 0: mom = f32(momentum) * mom + incr;  w = w - mom     else: w = w - incr
"""
import ctypes
import ctypes.util
import numbers

import numpy as np

__all__ = ["adam_update", "sgd_update", "rmsprop_update", "powf"]

f32 = np.float32


def _load_powf():
    """The C library's powf, or None where it cannot be loaded."""
    for name in (ctypes.util.find_library("m"), ctypes.util.find_library("c"), "ucrtbase"):
        if not name:
            continue
        try:
            fn = ctypes.CDLL(name).powf
        except (OSError, AttributeError):
            continue
        fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float, ctypes.c_float]
        return fn
    return None


_POWF = _load_powf()


def powf(base, exponent):
    """float32 pow exactly as the kernels (C++ std::pow(float, float)) and TF's scalar Eigen
    pow compute it: the C library's powf.

    np.power on float32 is NOT that: it is off by an ulp for e.g. 0.9f ** 4 (0.6561f instead of
    powf's correctly rounded 0.6560999f), and glibc's powf is itself not correctly rounded
    (~1% of 0.999f ** t differ by an ulp from round(double pow)), so only calling powf
    reproduces Adam's bias correction bit for bit. Without a loadable C library we fall back
    to the float64 pow rounded once to float32.
    """
    if _POWF is not None:
        return f32(_POWF(f32(base), f32(exponent)))
    return f32(float(f32(base)) ** float(f32(exponent)))


def _state(a, name, shape=None):
    """A float32 copy of `a` (so the caller's array is never modified), shape-checked."""
    if a is None:
        raise ValueError(f"{name} must be an array, got None")
    arr = np.array(a, dtype=np.float32, copy=True)
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape}, expected {shape}")
    return arr


def _real(v, name, lo, hi, hi_open=False):
    if not isinstance(v, numbers.Real) or isinstance(v, bool):
        raise ValueError(f"{name} must be a real number, got {v!r}")
    if not (lo <= v < hi if hi_open else lo <= v <= hi):
        raise ValueError(f"{name} must be in [{lo}, {hi}{')' if hi_open else ']'}, got {v!r}")
    return float(v)


def adam_update(w, m, v, g, lr, beta1=0.9, beta2=0.999, eps=1e-7, step=1, vhat=None):
    """One Keras Adam step. Returns (w, m, v, vhat); vhat is None unless amsgrad state given."""
    w = _state(w, "w")
    m, v, g = _state(m, "m", w.shape), _state(v, "v", w.shape), _state(g, "g", w.shape)
    vhat = None if vhat is None else _state(vhat, "vhat", w.shape)
    lr = _real(lr, "lr", 0.0, np.inf)
    beta1 = _real(beta1, "beta1", 0.0, 1.0, hi_open=True)
    beta2 = _real(beta2, "beta2", 0.0, 1.0, hi_open=True)
    eps = _real(eps, "eps", 0.0, np.inf)
    if not isinstance(step, numbers.Integral) or step < 1:
        raise ValueError(f"step must be an int >= 1, got {step!r}")
    t = f32(step)
    b1p = powf(f32(beta1), t)
    b2p = powf(f32(beta2), t)
    alpha = f32(lr) * np.sqrt(f32(1) - b2p) / (f32(1) - b1p)
    m = m + (g - m) * f32(1.0 - beta1)
    v = v + (g * g - v) * f32(1.0 - beta2)
    denom_v = v
    if vhat is not None:
        vhat = np.maximum(vhat, v)
        denom_v = vhat
    w = w - (m * alpha) / (np.sqrt(denom_v) + f32(eps))
    return w, m, v, vhat


def sgd_update(w, velocity, g, lr, momentum=0.0, nesterov=False):
    """One Keras SGD step. Returns (w, velocity); velocity may be None when momentum == 0."""
    w = _state(w, "w")
    g = _state(g, "g", w.shape)
    lr = _real(lr, "lr", 0.0, np.inf)
    momentum = _real(momentum, "momentum", 0.0, 1.0)
    if momentum == 0.0:
        vel = None if velocity is None else _state(velocity, "velocity", w.shape)
        return w - g * f32(lr), vel
    if velocity is None:
        raise ValueError("momentum != 0 needs a velocity array")
    vel = _state(velocity, "velocity", w.shape)
    mu = f32(momentum)
    vel = vel * mu - g * f32(lr)
    if nesterov:
        w = w + (vel * mu - g * f32(lr))
    else:
        w = w + vel
    return w, vel


def rmsprop_update(w, v, mom, avg, g, lr, rho=0.9, momentum=0.0, eps=1e-7, centered=False):
    """One Keras RMSprop step. Returns (w, v, mom, avg).

    mom is required when momentum > 0 and avg when centered; otherwise they may be None and
    are returned unchanged (as copies).
    """
    w = _state(w, "w")
    v, g = _state(v, "v", w.shape), _state(g, "g", w.shape)
    lr = _real(lr, "lr", 0.0, np.inf)
    rho = _real(rho, "rho", 0.0, 1.0)
    momentum = _real(momentum, "momentum", 0.0, 1.0)
    eps = _real(eps, "eps", 0.0, np.inf)
    if momentum > 0.0 and mom is None:
        raise ValueError("momentum > 0 needs a momentum array")
    if centered and avg is None:
        raise ValueError("centered=True needs an average-gradient array")
    mom = None if mom is None else _state(mom, "mom", w.shape)
    avg = None if avg is None else _state(avg, "avg", w.shape)
    r, omr = f32(rho), f32(1.0 - rho)
    v = r * v + omr * (g * g)
    if centered:
        avg = r * avg + omr * g
        denom = v - avg * avg + f32(eps)
    else:
        denom = v + f32(eps)
    incr = (f32(lr) * g) / np.sqrt(denom)
    if momentum > 0.0:
        mom = f32(momentum) * mom + incr
        w = w - mom
    else:
        w = w - incr
    return w, v, mom, avg
