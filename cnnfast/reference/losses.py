"""Reference cross-entropy losses, per sample (no batch reduction, no gradient scaling).

All take (B, K) rows and return (loss (B,), grad (B, K)); multiply grad by 1/B for Keras's
"sum_over_batch_size" mean. labels are integers in [0, K); targets are (B, K).

From logits (TF's cached-logits path / from_logits=True), no clipping:
    softmax_xent_sparse: loss = logsumexp(z) - z[y];            dlogits = softmax(z) - onehot(y)
    softmax_xent_dense:  loss = sum_k t_k (logsumexp(z) - z_k); dlogits = softmax(z) - t
    (the dense gradient is TF's SoftmaxCrossEntropyWithLogits backprop; it equals the true
    derivative when each target row sums to 1)
From probabilities (Keras TF backend, from_logits=False), eps = backend.epsilon() = 1e-7:
    xent_probs_sparse: q = clip(p, eps, 1-eps); loss = -log(q_y / sum_k q_k)
    xent_probs_dense:  r = p / sum_k p_k; q = clip(r, eps, 1-eps); loss = -sum_k t_k log q_k
    The gradient w.r.t. p is zero through a clipped cell (tf.clip_by_value passes the gradient
    only where eps <= value <= 1-eps).
Arithmetic is float64 by default.
"""
import numbers

import numpy as np

from ._checks import as_float_array, same_shape
from .activations import softmax

__all__ = ["softmax_xent_sparse", "softmax_xent_dense", "xent_probs_sparse", "xent_probs_dense"]


def _rows(a, name, dtype):
    a = as_float_array(a, name, 2, dtype)
    if a.shape[1] == 0:
        raise ValueError(f"{name} must have at least one class, got shape {a.shape}")
    return a


def _labels(labels, B, K):
    lab = np.asarray(labels)
    if not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {lab.dtype}")
    if lab.shape != (B,):
        raise ValueError(f"labels has shape {lab.shape}, expected ({B},)")
    bad = (lab < 0) | (lab >= K)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"label {int(lab[i])} at row {i} is outside [0, {K})")
    return lab.astype(np.intp)


def _eps(eps):
    if not isinstance(eps, numbers.Real) or not 0.0 <= eps < 0.5:
        raise ValueError(f"eps must be a float in [0, 0.5), got {eps!r}")
    return float(eps)


def _logsumexp(z):
    mx = z.max(axis=1, keepdims=True)
    return (mx + np.log(np.exp(z - mx).sum(axis=1, keepdims=True)))[:, 0]


def softmax_xent_sparse(logits, labels, dtype=np.float64):
    """(loss (B,), dlogits (B, K)) for integer labels (B,)."""
    z = _rows(logits, "logits", dtype)
    B, K = z.shape
    y = _labels(labels, B, K)
    rows = np.arange(B)
    loss = _logsumexp(z) - z[rows, y]
    d = softmax(z, axis=1)
    d[rows, y] -= 1.0
    return loss, d


def softmax_xent_dense(logits, targets, dtype=np.float64):
    """(loss (B,), dlogits (B, K)) for target distributions (B, K)."""
    z = _rows(logits, "logits", dtype)
    t = _rows(targets, "targets", dtype)
    same_shape(z, t, "logits", "targets")
    loss = (t * (_logsumexp(z)[:, None] - z)).sum(axis=1)
    return loss, softmax(z, axis=1) - t


def xent_probs_sparse(probs, labels, eps=1e-7, dtype=np.float64):
    """(loss (B,), dprobs (B, K)): clip, then renormalise, then -log q_y / sum q."""
    p = _rows(probs, "probs", dtype)
    B, K = p.shape
    y = _labels(labels, B, K)
    eps = _eps(eps)
    rows = np.arange(B)
    q = np.clip(p, eps, 1.0 - eps)
    s = q.sum(axis=1)
    loss = np.log(s) - np.log(q[rows, y])
    # d/dq_k [log(sum q) - log(q_y)] = 1/s - [k == y]/q_y, passed only where p is not clipped.
    g = np.broadcast_to(1.0 / s[:, None], p.shape).copy()
    g[rows, y] -= 1.0 / q[rows, y]
    inside = (p >= eps) & (p <= 1.0 - eps)
    return loss, np.where(inside, g, 0.0)


def xent_probs_dense(probs, targets, eps=1e-7, dtype=np.float64):
    """(loss (B,), dprobs (B, K)): normalise, then clip, then -sum t log q."""
    p = _rows(probs, "probs", dtype)
    t = _rows(targets, "targets", dtype)
    same_shape(p, t, "probs", "targets")
    eps = _eps(eps)
    s = p.sum(axis=1, keepdims=True)
    if (s <= 0).any():
        raise ValueError("every row of probs must have a positive sum")
    r = p / s
    q = np.clip(r, eps, 1.0 - eps)
    loss = -(t * np.log(q)).sum(axis=1)
    # L = -sum_j t_j log clip(r_j), r = p / s:  dL/dp_i = (g_i - sum_j g_j r_j) / s
    # with g_j = -t_j / r_j where r_j is not clipped, else 0.
    inside = (r >= eps) & (r <= 1.0 - eps)
    g = np.where(inside, -t / np.where(inside, r, 1.0), 0.0)
    return loss, (g - (g * r).sum(axis=1, keepdims=True)) / s
