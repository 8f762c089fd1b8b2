"""Reference BatchNormalization over the last axis (Keras axis=-1).

Shapes:
    x  (..., C)   input; every axis but the last is reduced (M = x.size // C rows)
    gamma, beta, moving_mean, moving_var  (C,), gamma/beta may be None (scale/center=False)
    y  (..., C)
Training:  mean = x.mean(rows), var = ((x - mean)**2).mean(rows)   (biased, as tf.nn.moments)
           y = gamma * (x - mean) / sqrt(var + eps) + beta
           moving = moving * momentum + batch * (1 - momentum)
Inference: the same y with mean, var = moving_mean, moving_var.
Arithmetic is float64 by default; the formulas are written directly (the gradient is the
textbook one, not the kernel's), so the kernel tests compare two independent derivations.
"""
import numpy as np

from ._checks import as_float_array

__all__ = ["batchnorm_forward", "batchnorm_backward"]


def _rows(x, dtype):
    x = as_float_array(x, "x", None, dtype)
    if x.ndim < 1 or x.size == 0:
        raise ValueError(f"x must have at least one element and one axis, got shape {x.shape}")
    return x.reshape(-1, x.shape[-1])


def _vec(v, name, C, dtype, default):
    if v is None:
        return np.full(C, default, dtype)
    v = as_float_array(v, name, 1, dtype)
    if v.shape != (C,):
        raise ValueError(f"{name} has shape {v.shape}, expected ({C},)")
    return v


def batchnorm_forward(x, gamma, beta, moving_mean, moving_var, eps=1e-3, momentum=0.99,
                      training=True, dtype=np.float64):
    """Returns (y like x, mean (C,), var (C,), new moving_mean (C,), new moving_var (C,)):
    mean/var are the statistics used (the batch's when training, else the moving ones)."""
    x2 = _rows(x, dtype)
    C = x2.shape[1]
    g = _vec(gamma, "gamma", C, dtype, 1.0)
    b = _vec(beta, "beta", C, dtype, 0.0)
    mm = _vec(moving_mean, "moving_mean", C, dtype, 0.0)
    mv = _vec(moving_var, "moving_var", C, dtype, 1.0)
    if training:
        mean = x2.mean(axis=0)
        var = ((x2 - mean) ** 2).mean(axis=0)
        mm = mm * momentum + mean * (1.0 - momentum)
        mv = mv * momentum + var * (1.0 - momentum)
    else:
        mean, var = mm.copy(), mv.copy()
    y = g * (x2 - mean) / np.sqrt(var + eps) + b
    return y.reshape(np.shape(x)), mean, var, mm, mv


def batchnorm_backward(dy, x, gamma, mean, var, eps=1e-3, training=True, dtype=np.float64):
    """Returns (dx like x, dgamma (C,), dbeta (C,)) for the forward that used mean/var."""
    x2 = _rows(x, dtype)
    C = x2.shape[1]
    dy2 = as_float_array(dy, "dy", None, dtype)
    if dy2.shape != np.shape(x):
        raise ValueError(f"dy has shape {dy2.shape}, expected {np.shape(x)}")
    dy2 = dy2.reshape(-1, C)
    g = _vec(gamma, "gamma", C, dtype, 1.0)
    mean = _vec(mean, "mean", C, dtype, 0.0)
    var = _vec(var, "var", C, dtype, 1.0)
    M = x2.shape[0]
    std = np.sqrt(var + eps)
    xhat = (x2 - mean) / std
    dbeta = dy2.sum(axis=0)
    dgamma = (dy2 * xhat).sum(axis=0)
    dxhat = dy2 * g
    if training:
        # mean and var depend on x: the chain rule through both.
        dvar = (dxhat * (x2 - mean)).sum(axis=0) * -0.5 * std ** -3
        dmean = -dxhat.sum(axis=0) / std + dvar * (-2.0 * (x2 - mean)).mean(axis=0)
        dx = dxhat / std + dvar * 2.0 * (x2 - mean) / M + dmean / M
    else:
        dx = dxhat / std
    return dx.reshape(np.shape(x)), dgamma, dbeta
