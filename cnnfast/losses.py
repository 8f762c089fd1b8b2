"""Cross-entropy losses with the Keras TF-backend numerics.

When the model's output comes from a softmax activation and the loss is (sparse) categorical
cross-entropy with from_logits=False, the trainer uses the cached logits (TF's rule): loss and
gradient come from the fused softmax + cross-entropy kernel, unclipped. Otherwise probabilities
are clipped to [1e-7, 1 - 1e-7] (sparse: clip then renormalise; categorical: normalise then
clip). Reduction is always the batch mean ('sum_over_batch_size').
"""
from __future__ import annotations

import numpy as np

from . import backend
from ._names import resolve_name

EPSILON = 1e-7


class Loss:
    sparse = False
    name = "loss"

    def __init__(self, from_logits=False, reduction="sum_over_batch_size", name=None, **kwargs):
        if reduction not in ("sum_over_batch_size", "auto"):
            raise NotImplementedError(f"{type(self).__name__}: reduction={reduction!r} is not "
                                      "supported (only 'sum_over_batch_size')")
        for k, v in kwargs.items():
            if k == "ignore_class" and v is None or k == "label_smoothing" and v == 0 or \
                    k == "axis" and v == -1 or k == "dtype" and v in (None, "float32"):
                continue
            raise NotImplementedError(f"{type(self).__name__}: argument {k}={v!r} is not "
                                      "supported by cnnfast")
        self.from_logits = bool(from_logits)
        if name:
            self.name = name

    def per_sample(self, y_true, y_pred, logits_input, loss_out, grad_out, grad_scale):
        """Per-sample losses into loss_out (B,); gradient w.r.t. y_pred (or logits when
        logits_input) into grad_out scaled by grad_scale (grad_out may be None). y_true is
        int32 (B,) for the sparse loss, float32 (B, K) for the categorical one. Returns the
        batch mean as the native Net computes it (float32 sequential sum / B)."""
        return backend.cross_entropy(loss_out, grad_out, y_pred, y_true, logits_input,
                                     EPSILON, grad_scale)

    def __call__(self, y_true, y_pred, sample_weight=None):
        """Eager batch-mean loss on NumPy arrays (a float32 scalar)."""
        if sample_weight is not None:
            raise NotImplementedError(f"{type(self).__name__}: sample_weight is not supported")
        per = _eager_per_sample(self.sparse, y_true, y_pred, self.from_logits)
        return np.float32(per.sum(dtype=np.float32) / np.float32(max(per.size, 1)))

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}


class SparseCategoricalCrossentropy(Loss):
    sparse = True
    name = "sparse_categorical_crossentropy"


class CategoricalCrossentropy(Loss):
    sparse = False
    name = "categorical_crossentropy"


def _eager_per_sample(sparse, y_true, y_pred, from_logits):
    y_pred = backend.as_f32(y_pred)
    if y_pred.ndim != 2:
        raise ValueError(f"cross-entropy: y_pred must be (batch, classes), got {y_pred.shape}")
    loss = np.empty(y_pred.shape[0], np.float32)
    if sparse:
        y = np.asarray(y_true).reshape(-1)
        if y.shape[0] != y_pred.shape[0]:
            raise ValueError(f"cross-entropy: y_true {np.shape(y_true)} and y_pred "
                             f"{y_pred.shape} have different batch sizes")
        y = np.ascontiguousarray(y, dtype=np.int32)
    else:
        y = backend.as_f32(y_true)
        if y.shape != y_pred.shape:
            raise ValueError(f"categorical_crossentropy: y_true {y.shape} and y_pred "
                             f"{y_pred.shape} must have the same shape")
    backend.cross_entropy(loss, None, y_pred, y, from_logits, EPSILON, 1.0)
    return loss


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    """Per-sample sparse categorical cross-entropy (NumPy in, NumPy out), as Keras."""
    if ignore_class is not None or axis != -1:
        raise NotImplementedError("sparse_categorical_crossentropy: ignore_class/axis")
    return _eager_per_sample(True, y_true, y_pred, from_logits)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample categorical cross-entropy (NumPy in, NumPy out), as Keras."""
    if label_smoothing or axis != -1:
        raise NotImplementedError("categorical_crossentropy: label_smoothing/axis")
    return _eager_per_sample(False, y_true, y_pred, from_logits)


sparse_categorical_crossentropy._cnnfast_loss = SparseCategoricalCrossentropy
categorical_crossentropy._cnnfast_loss = CategoricalCrossentropy

_BY_NAME = {
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
}
_KERAS_OTHERS = {"mse", "mean_squared_error", "mae", "mean_absolute_error", "binary_crossentropy",
                 "binary_focal_crossentropy", "hinge", "squared_hinge", "categorical_hinge",
                 "huber", "log_cosh", "kl_divergence", "kld", "poisson", "cosine_similarity",
                 "mean_absolute_percentage_error", "mean_squared_logarithmic_error",
                 "categorical_focal_crossentropy", "ctc", "dice", "tversky"}


def get(identifier):
    """A Loss instance for a string, a Loss, or one of this module's loss functions."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        return _BY_NAME[resolve_name("loss", identifier, _BY_NAME, _KERAS_OTHERS)]()
    cls = getattr(identifier, "_cnnfast_loss", None)
    if cls is not None:
        return cls()
    if callable(identifier):
        raise NotImplementedError(
            f"loss={identifier!r}: cnnfast cannot differentiate an arbitrary Python callable; "
            f"use one of {sorted(_BY_NAME)} (string, class or cnnfast.losses function)")
    raise TypeError(f"loss must be a string, a Loss or a loss function, got {identifier!r}")
