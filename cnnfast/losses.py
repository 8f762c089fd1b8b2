"""Losses with the Keras TF-backend numerics: the cross-entropies (the Net's, csrc/net.h) and
the elementwise losses (csrc/losses.h: mse, mae, huber, binary_crossentropy, kl_divergence,
hinge, squared_hinge, categorical_hinge), which run on the LayerEngine.

When the model's output comes from a softmax activation and the loss is (sparse) categorical
cross-entropy with from_logits=False, the trainer uses the cached logits (TF's rule): loss and
gradient come from the fused softmax + cross-entropy kernel, unclipped. Otherwise probabilities
are clipped to [1e-7, 1 - 1e-7] (sparse: clip then renormalise; categorical: normalise then
clip). binary_crossentropy reads a sigmoid output's logits by the same rule. Reduction is
always the batch mean ('sum_over_batch_size').
"""
from __future__ import annotations

import numpy as np

from . import backend
from ._names import resolve_name

EPSILON = 1e-7


class Loss:
    """Base of every loss: Keras's reduction ('sum_over_batch_size': the per-sample losses
    summed in row order, divided by their count) and the name History reports."""

    sparse = False  # targets are int32 class indices (else float32, the output's shape)
    native = False  # the Net computes it (the cross-entropies, csrc/net.h)
    logits_activation = None  # the output activation whose cached logits the loss reads
    from_logits = False
    name = "loss"

    def __init__(self, reduction="sum_over_batch_size", name=None, dtype=None):
        if reduction not in ("sum_over_batch_size", "auto"):
            raise NotImplementedError(f"{type(self).__name__}: reduction={reduction!r} is not "
                                      "supported (only 'sum_over_batch_size')")
        if dtype not in (None, "float32"):
            raise NotImplementedError(f"{type(self).__name__}: dtype={dtype!r} is not "
                                      "supported (float32 only)")
        if name:
            self.name = name

    def prepare_targets(self, y_true):
        """The targets as the kernel reads them (a batch-wide conversion, e.g. hinge's)."""
        return y_true

    def per_sample(self, y_true, y_pred, logits_input, loss_out, grad_out, grad_scale):
        """Per-sample losses into loss_out (B,); gradient w.r.t. y_pred (or logits when
        logits_input) into grad_out scaled by grad_scale (grad_out may be None). Returns the
        batch mean as the native Net computes it (float32 sequential sum / B)."""
        raise NotImplementedError

    def __call__(self, y_true, y_pred, sample_weight=None):
        """Eager batch-mean loss on NumPy arrays (a float32 scalar); with sample_weight,
        Keras's sum(w * loss) / size (keras/src/losses/loss.py reduce_weighted_values)."""
        per = self.call(y_true, y_pred)
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=np.float32)
            # Keras's squeeze_or_expand_to_same_rank: a trailing axis of 1 on either side
            if w.ndim == per.ndim + 1 and w.shape[-1] == 1:
                w = w[..., 0]
            elif per.ndim == w.ndim + 1 and per.shape[-1] == 1:
                per = per[..., 0]
            try:
                per = per * np.broadcast_to(w.reshape(w.shape + (1,) * (per.ndim - w.ndim)),
                                            per.shape)
            except ValueError:
                raise ValueError(f"{type(self).__name__}: sample_weight of shape {w.shape} "
                                 f"does not match the losses of shape {per.shape}") from None
        return np.float32(per.sum(dtype=np.float32) / np.float32(max(per.size, 1)))

    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class _CrossEntropy(Loss):
    """(Sparse) categorical cross-entropy: the fused kernels of csrc/activations.h."""

    native = True
    logits_activation = "softmax"

    def __init__(self, from_logits=False, reduction="sum_over_batch_size", name=None, **kwargs):
        dtype = kwargs.pop("dtype", None)
        for k, v in kwargs.items():
            if k == "ignore_class" and v is None or k == "label_smoothing" and v == 0 or \
                    k == "axis" and v == -1:
                continue
            raise NotImplementedError(f"{type(self).__name__}: argument {k}={v!r} is not "
                                      "supported by cnnfast")
        super().__init__(reduction, name, dtype)
        self.from_logits = bool(from_logits)

    def per_sample(self, y_true, y_pred, logits_input, loss_out, grad_out, grad_scale):
        # y_true is int32 (B,) for the sparse loss, float32 (B, K) for the categorical one.
        return backend.cross_entropy(loss_out, grad_out, y_pred, y_true, logits_input,
                                     EPSILON, grad_scale)

    def call(self, y_true, y_pred):
        return _eager_per_sample(self.sparse, y_true, y_pred, self.from_logits)

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}


class SparseCategoricalCrossentropy(_CrossEntropy):
    sparse = True
    name = "sparse_categorical_crossentropy"


class CategoricalCrossentropy(_CrossEntropy):
    sparse = False
    name = "categorical_crossentropy"


class ElementwiseLoss(Loss):
    """A loss computed per element and reduced over the last axis (csrc/losses.h): the
    regression, binary and hinge losses. Runs on the LayerEngine (the Net's loss is a
    cross-entropy). Targets are float32 with the output's shape."""

    kind = None  # the _core.ElementLoss member name
    param = 0.0  # huber's delta, binary_crossentropy's label_smoothing

    def per_sample(self, y_true, y_pred, logits_input, loss_out, grad_out, grad_scale):
        return backend.element_loss(loss_out, grad_out, y_pred, self.prepare_targets(y_true),
                                     getattr(backend.ElementLoss, self.kind),
                                     bool(logits_input), float(self.param), EPSILON, grad_scale)

    def call(self, y_true, y_pred):
        y_pred = backend.as_f32(y_pred)
        y_true = backend.as_f32(y_true)
        if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
            y_true = y_true.reshape(y_true.shape + (1,))  # Keras squeezes/expands to one rank
        if y_true.shape != y_pred.shape or y_pred.ndim < 1:
            raise ValueError(f"{self.name}: y_true {y_true.shape} and y_pred {y_pred.shape} "
                             "must have the same shape")
        k = y_pred.shape[-1] if y_pred.ndim > 1 else y_pred.size
        pred, true = y_pred.reshape(-1, k), y_true.reshape(-1, k)
        loss = np.empty(pred.shape[0], np.float32)
        self.per_sample(true, pred, self.from_logits, loss, None, 1.0)
        return loss.reshape(y_pred.shape[:-1])

    def get_config(self):
        return {"name": self.name}


class MeanSquaredError(ElementwiseLoss):
    kind = name = "mean_squared_error"


class MeanAbsoluteError(ElementwiseLoss):
    kind = name = "mean_absolute_error"


class Huber(ElementwiseLoss):
    kind = "huber"
    name = "huber_loss"

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss",
                 dtype=None):
        super().__init__(reduction, name, dtype)
        self.param = self.delta = float(delta)

    def get_config(self):
        return {"name": self.name, "delta": self.delta}


class BinaryCrossentropy(ElementwiseLoss):
    """Binary cross-entropy: from logits (TF's sigmoid_cross_entropy_with_logits), or from
    probabilities clipped to [1e-7, 1 - 1e-7]; a sigmoid output with from_logits=False reads
    the sigmoid's cached logits, as Keras's TF backend (docs/keras_semantics.md#cached-logits)."""

    kind = name = "binary_crossentropy"
    logits_activation = "sigmoid"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="binary_crossentropy", dtype=None):
        if axis != -1:
            raise NotImplementedError("BinaryCrossentropy: only axis=-1 is supported")
        super().__init__(reduction, name, dtype)
        self.from_logits = bool(from_logits)
        self.param = self.label_smoothing = float(label_smoothing)

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing}


class KLDivergence(ElementwiseLoss):
    kind = name = "kl_divergence"


class _HingeLabels(ElementwiseLoss):
    def prepare_targets(self, y_true):
        # Keras's convert_binary_labels_to_hinge: a batch of 0/1 labels becomes -1/+1
        if np.all((y_true == 0) | (y_true == 1)):
            return np.ascontiguousarray(2.0 * y_true - 1.0, dtype=np.float32)
        return y_true


class Hinge(_HingeLabels):
    kind = name = "hinge"


class SquaredHinge(_HingeLabels):
    kind = name = "squared_hinge"


class CategoricalHinge(ElementwiseLoss):
    kind = name = "categorical_hinge"


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


def _function(cls, name, doc):
    def fn(y_true, y_pred, **kwargs):
        return cls(**kwargs).call(y_true, y_pred)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    fn._cnnfast_loss = cls
    return fn


mean_squared_error = _function(MeanSquaredError, "mean_squared_error",
                               "Per-sample mean over the last axis of (y_true - y_pred)^2.")
mean_absolute_error = _function(MeanAbsoluteError, "mean_absolute_error",
                                "Per-sample mean over the last axis of |y_true - y_pred|.")
huber = _function(Huber, "huber", "Per-sample Huber loss (delta=1.0), mean over the last axis.")
binary_crossentropy = _function(BinaryCrossentropy, "binary_crossentropy",
                                "Per-sample binary cross-entropy (from_logits, "
                                "label_smoothing), mean over the last axis.")
kl_divergence = _function(KLDivergence, "kl_divergence",
                          "Per-sample sum over the last axis of y_true log(y_true / y_pred).")
hinge = _function(Hinge, "hinge", "Per-sample mean over the last axis of max(1 - t y, 0).")
squared_hinge = _function(SquaredHinge, "squared_hinge",
                          "Per-sample mean over the last axis of max(1 - t y, 0)^2.")
categorical_hinge = _function(CategoricalHinge, "categorical_hinge",
                              "Per-sample max(max((1 - t) y) - sum(t y) + 1, 0).")
mse, mae, kld = mean_squared_error, mean_absolute_error, kl_divergence
MSE, MAE, KLD = mse, mae, kld

sparse_categorical_crossentropy._cnnfast_loss = SparseCategoricalCrossentropy
categorical_crossentropy._cnnfast_loss = CategoricalCrossentropy

_BY_NAME = {
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "huber": Huber, "huber_loss": Huber,
    "binary_crossentropy": BinaryCrossentropy,
    "kl_divergence": KLDivergence, "kld": KLDivergence, "kullback_leibler_divergence":
    KLDivergence,
    "hinge": Hinge, "squared_hinge": SquaredHinge, "categorical_hinge": CategoricalHinge,
}
# the Loss classes, by class name (saving's whitelist)
LOSS_CLASSES = tuple(dict.fromkeys(_BY_NAME.values()))
_KERAS_OTHERS = {"binary_focal_crossentropy", "log_cosh", "logcosh", "poisson",
                 "cosine_similarity", "mean_absolute_percentage_error", "mape", "msle",
                 "mean_squared_logarithmic_error", "categorical_focal_crossentropy", "ctc",
                 "dice", "tversky", "sparse_categorical_hinge", "circle"}


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
