"""Metrics: accuracy in its Keras forms, mse/mae, binary Precision/Recall, and the float32
running state Keras keeps for them over an epoch (docs/keras_semantics.md#accuracy).

Each metric turns one batch into a statistic (`batch_stat`): the float32 sum of its per-sample
values for a mean metric (Keras's MeanMetricWrapper), the (true, false) positive counts for
Precision/Recall. The loops feed each batch's statistic to the metric's tracker
(`new_tracker`), whose `result()` is what History reports."""
from __future__ import annotations

import numpy as np

from . import losses as losses_mod


class Mean:
    """Keras's reduction Mean: float32 total and count, result = total / count."""

    def __init__(self, name="mean"):
        self.name = name
        self.reset_state()

    def reset_state(self):
        self.total = np.float32(0.0)
        self.count = np.float32(0.0)

    def update_state(self, value_sum, weight):
        self.total = np.float32(self.total + np.float32(value_sum))
        self.count = np.float32(self.count + np.float32(weight))

    def result(self):
        return float(self.total / self.count) if self.count else 0.0


class Metric:
    """Base: a name, a per-batch statistic, and the tracker that accumulates it."""

    kind = None  # what the metric computes; the Net counts only its loss's accuracy
    name = "metric"
    direction = "up"  # Keras's _direction: which way is better (EarlyStopping's auto mode)

    def __init__(self, name=None, dtype=None):
        if dtype not in (None, "float32"):
            raise NotImplementedError(f"{type(self).__name__}: dtype={dtype!r} (float32 only)")
        if name is not None:
            self.name = name
        self._bufs = {}

    def _buf(self, key, n, dtype):
        b = self._bufs.get((key, n))
        if b is None:
            b = self._bufs[(key, n)] = np.empty(n, dtype)
        return b

    def new_tracker(self):
        return Mean(self.name)

    def per_sample(self, y_true, y_pred):
        """The metric's value per sample (float32), as the Keras function of the same name."""
        raise NotImplementedError

    def batch_stat(self, y_true, y_pred):
        """The batch's statistic for the tracker: the float32 sum of the per-sample values."""
        return self.per_sample(y_true, y_pred).sum(dtype=np.float32)

    def get_config(self):
        return {"name": self.name}


class Accuracy(Metric):
    """An accuracy: 'sparse' (argmax == label), 'categorical' (argmax == argmax of one-hot),
    'binary' (y_pred > threshold == y_true, a mean over the last axis). kind None (the string
    'accuracy' before the output's shape is known) resolves on first use as Keras does: binary
    for a last axis of 1, sparse for labels of lower rank, else categorical. Ties take the
    first index, as argmax does."""

    def __init__(self, name="accuracy", kind=None, threshold=0.5, dtype=None):
        super().__init__(name, dtype)
        self.kind = kind
        self.threshold = float(threshold)

    def resolve(self, y_true_ndim, y_pred_shape):
        if self.kind is None:
            self.kind = "binary" if y_pred_shape[-1] == 1 else \
                "sparse" if y_true_ndim < len(y_pred_shape) else "categorical"
        return self

    def correct(self, y_true, y_pred):
        """Number of correct rows (sparse/categorical); reuses its index buffers."""
        n = y_pred.shape[0]
        pred = np.argmax(y_pred.reshape(n, -1), axis=-1, out=self._buf("pred", n, np.intp))
        if self.kind == "sparse":
            truth = y_true.reshape(-1)
        else:
            truth = np.argmax(y_true.reshape(n, -1), axis=-1, out=self._buf("true", n, np.intp))
        return np.count_nonzero(np.equal(pred, truth, out=self._buf("eq", n, np.bool_)))

    def per_sample(self, y_true, y_pred):
        self.resolve(np.ndim(y_true), y_pred.shape)
        if self.kind == "binary":
            hit = (y_pred > np.float32(self.threshold)).astype(np.float32) == \
                _expand(y_true, y_pred)
            return hit.mean(axis=-1, dtype=np.float32)
        return _argmax_hits(self.kind == "sparse", y_true, y_pred)

    def batch_stat(self, y_true, y_pred):
        self.resolve(np.ndim(y_true), y_pred.shape)
        if self.kind == "binary":
            return super().batch_stat(y_true, y_pred)
        return self.correct(y_true, y_pred)

    def get_config(self):
        cfg = {"name": self.name, "kind": self.kind}
        if self.kind == "binary":
            cfg["threshold"] = self.threshold
        return cfg


def _expand(y_true, y_pred):
    y_true = np.asarray(y_true, np.float32)
    return y_true.reshape(y_true.shape + (1,)) if y_true.ndim == y_pred.ndim - 1 else y_true


def _argmax_hits(sparse, y_true, y_pred):
    n = y_pred.shape[0]
    pred = np.argmax(y_pred.reshape(n, -1), axis=-1)
    truth = np.asarray(y_true).reshape(-1) if sparse else np.argmax(
        np.asarray(y_true).reshape(n, -1), axis=-1)
    return (pred == truth).astype(np.float32)


class TopKAccuracy(Metric):
    """top_k_categorical_accuracy (one-hot targets) or its sparse form: TF's in_top_k, where the
    target's class is in the top k when fewer than k classes score strictly higher (ties at
    the boundary count as in), and a non-finite row is a miss."""

    def __init__(self, k=5, name=None, sparse=False, dtype=None):
        super().__init__(name or ("sparse_top_k_categorical_accuracy" if sparse
                                  else "top_k_categorical_accuracy"), dtype)
        self.k, self.sparse = int(k), bool(sparse)
        self.kind = "sparse_top_k" if sparse else "top_k"

    def per_sample(self, y_true, y_pred):
        n = y_pred.shape[0]
        p = y_pred.reshape(n, -1)
        t = np.asarray(y_true).reshape(-1).astype(np.intp) if self.sparse else \
            np.argmax(np.asarray(y_true).reshape(n, -1), axis=-1)
        target = p[np.arange(n), t]
        above = np.count_nonzero(p > target[:, None], axis=1)
        ok = (above < self.k) & np.isfinite(p).all(axis=1)
        return ok.astype(np.float32)

    def get_config(self):
        return {"name": self.name, "k": self.k, "sparse": self.sparse}


class _LossMetric(Metric):
    """The mean over the epoch of a loss function's per-sample values (mse, mae)."""

    loss_class = None
    direction = "down"

    def __init__(self, name=None, dtype=None):
        super().__init__(name, dtype)
        self._loss = self.loss_class()

    def per_sample(self, y_true, y_pred):
        return self._loss.call(_expand(y_true, y_pred), y_pred)


class MeanSquaredError(_LossMetric):
    kind = name = "mean_squared_error"
    loss_class = losses_mod.MeanSquaredError


class MeanAbsoluteError(_LossMetric):
    kind = name = "mean_absolute_error"
    loss_class = losses_mod.MeanAbsoluteError


class _Confusion:
    """Keras's float32 true-positive and false (positive or negative) counters, result
    tp / (tp + f) (0 when empty, divide_no_nan)."""

    def __init__(self, name):
        self.name = name
        self.reset_state()

    def reset_state(self):
        self.tp = np.float32(0.0)
        self.f = np.float32(0.0)

    def update_state(self, stat, weight=None):
        self.tp = np.float32(self.tp + np.float32(stat[0]))
        self.f = np.float32(self.f + np.float32(stat[1]))

    def result(self):
        d = np.float32(self.tp + self.f)
        return float(self.tp / d) if d else 0.0


class _BinaryConfusionMetric(Metric):
    """Precision / Recall with one threshold: y_pred > threshold is a positive prediction,
    y_true != 0 a positive label, over every element (Keras flattens)."""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        if top_k is not None or class_id is not None:
            raise NotImplementedError(f"{type(self).__name__}: top_k/class_id are not supported")
        if isinstance(thresholds, (list, tuple)):
            if len(thresholds) != 1:
                raise NotImplementedError(f"{type(self).__name__}: one threshold only")
            thresholds = thresholds[0]
        super().__init__(name, dtype)
        self.thresholds = 0.5 if thresholds is None else float(thresholds)

    def new_tracker(self):
        return _Confusion(self.name)

    def batch_stat(self, y_true, y_pred):
        pred = y_pred > np.float32(self.thresholds)
        label = _expand(y_true, y_pred).reshape(pred.shape) != 0
        tp = np.count_nonzero(pred & label)
        other = np.count_nonzero(pred & ~label) if self.kind == "precision" else \
            np.count_nonzero(~pred & label)
        return tp, other

    def get_config(self):
        return {"name": self.name, "thresholds": self.thresholds}


class Precision(_BinaryConfusionMetric):
    kind = name = "precision"


class Recall(_BinaryConfusionMetric):
    kind = name = "recall"


def SparseCategoricalAccuracy(name="sparse_categorical_accuracy", dtype=None):
    return Accuracy(name=name, kind="sparse", dtype=dtype)


def CategoricalAccuracy(name="categorical_accuracy", dtype=None):
    return Accuracy(name=name, kind="categorical", dtype=dtype)


def BinaryAccuracy(name="binary_accuracy", dtype=None, threshold=0.5):
    return Accuracy(name=name, kind="binary", threshold=threshold, dtype=dtype)


def TopKCategoricalAccuracy(k=5, name="top_k_categorical_accuracy", dtype=None):
    return TopKAccuracy(k, name, sparse=False, dtype=dtype)


def SparseTopKCategoricalAccuracy(k=5, name="sparse_top_k_categorical_accuracy", dtype=None):
    return TopKAccuracy(k, name, sparse=True, dtype=dtype)


# string -> a factory taking the name (History's key is the string given, as Keras)
_BY_NAME = {
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "precision": Precision, "recall": Recall,
}
_KERAS_OTHERS = {"auc", "binary_crossentropy", "categorical_crossentropy", "kl_divergence",
                 "sparse_categorical_crossentropy", "hinge", "squared_hinge", "poisson",
                 "mean_absolute_percentage_error", "mape", "msle", "cosine_similarity",
                 "f1_score", "r2_score", "log_cosh_error", "root_mean_squared_error",
                 "categorical_hinge", "iou", "mean_iou"}


def _accuracy_kind(loss, output_shape):
    """Keras's choice for 'accuracy' (compile_utils.get_metric), from the output's last axis and
    the labels the loss takes; None while the output's shape is unknown and the loss does not
    tell."""
    if output_shape is not None and output_shape[-1] == 1:
        return "binary"
    if loss is None or loss.sparse:
        return "sparse"
    if loss.native or output_shape is not None:
        return "categorical"
    return None


def get(identifier, loss=None, output_shape=None):
    """Resolve a metric given in compile(); 'accuracy'/'acc' are auto-mapped as Keras does."""
    if isinstance(identifier, Accuracy) and identifier.kind is None:
        identifier.kind = _accuracy_kind(loss, output_shape)
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in ("accuracy", "acc"):
            return Accuracy(name=identifier, kind=_accuracy_kind(loss, output_shape))
        if key in _BY_NAME:
            return _BY_NAME[key](name=identifier)
        supported = sorted(set(_BY_NAME) | {"accuracy", "acc"})
        if key in _KERAS_OTHERS:
            raise NotImplementedError(f"metric {identifier!r} is not implemented by cnnfast; "
                                      f"supported: {supported}")
        raise ValueError(f"Unknown metric {identifier!r}; supported: {supported}")
    raise NotImplementedError(f"metric {identifier!r}: give a string or a cnnfast.metrics "
                              "metric")


METRIC_CLASSES = {cls.__name__: cls for cls in (Accuracy, TopKAccuracy, MeanSquaredError,
                                                MeanAbsoluteError, Precision, Recall)}
